"""Idempotency-Key on POST: a retry gets the first 2xx answer again and records nothing."""
from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, insert, select

from app import idempotency
from app.idempotency import Claim, Idempotency, Scope
from app.routes.agreements import created
from projections.schema import events, idempotency_keys
from tests import builders

CLAIMS = "/v1/agreements/accord/claims"


@pytest.fixture
def accord(client: TestClient) -> TestClient:
    assert client.post("/v1/agreements", json=builders.agreement()).status_code == 201
    assert client.post("/v1/agreements/accord/commitments", json=builders.commitment()).status_code == 201
    return client


def event_count(client: TestClient) -> int:
    with client.app.state.runtime.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(events)).scalar()


def key_rows(client: TestClient) -> list[Any]:
    with client.app.state.runtime.engine.connect() as conn:
        return conn.execute(select(idempotency_keys)).all()


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def plant(client: TestClient, key: str, body: dict[str, Any], state: str, age: timedelta,
          path: str = CLAIMS) -> None:
    """A row as another request would have left it `age` ago."""
    with client.app.state.runtime.engine.begin() as conn:
        conn.execute(insert(idempotency_keys).values(
            principal="admin", method="POST", path=path, idem_key=key,
            request_hash=idempotency.fingerprint(json.dumps(body).encode()), state=state,
            status=201 if state == "done" else None, headers="{}" if state == "done" else None,
            body=b"{}" if state == "done" else None, created_at=stamp(datetime.now(timezone.utc) - age)))


def test_a_retry_gets_the_first_answer_again_and_records_nothing(accord: TestClient) -> None:
    first = accord.post(CLAIMS, json=builders.claim(), headers={"Idempotency-Key": "retry-1"})
    assert first.status_code == 201
    before = event_count(accord)
    again = accord.post(CLAIMS, json=builders.claim(), headers={"Idempotency-Key": "retry-1"})
    assert again.status_code == 201
    assert again.content == first.content
    assert again.headers["ETag"] == first.headers["ETag"]
    assert again.headers["Location"] == first.headers["Location"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert event_count(accord) == before


def test_the_replay_is_the_first_answer_even_after_later_writes(accord: TestClient) -> None:
    first = accord.post(CLAIMS, json=builders.claim("k1"), headers={"Idempotency-Key": "early"})
    assert accord.post(CLAIMS, json=builders.claim("k2")).status_code == 201
    again = accord.post(CLAIMS, json=builders.claim("k1"), headers={"Idempotency-Key": "early"})
    assert (again.status_code, again.json(), again.headers["ETag"]) == (201, first.json(), first.headers["ETag"])
    assert again.headers["ETag"] != accord.get("/v1/agreements/accord").headers["ETag"]


def test_the_same_json_in_other_bytes_is_the_same_body(accord: TestClient) -> None:
    body = builders.claim()
    first = accord.post(CLAIMS, content=json.dumps(body), headers={"Idempotency-Key": "bytes"})
    reordered = json.dumps(dict(reversed(list(body.items()))), indent=2).encode()
    again = accord.post(CLAIMS, content=reordered, headers={"Idempotency-Key": "bytes"})
    assert again.status_code == 201 and again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"


def test_the_same_key_with_another_body_is_422_and_records_nothing(accord: TestClient) -> None:
    assert accord.post(CLAIMS, json=builders.claim("k1"), headers={"Idempotency-Key": "reused"}).status_code == 201
    before = event_count(accord)
    answer = accord.post(CLAIMS, json=builders.claim("k2"), headers={"Idempotency-Key": "reused"})
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    assert "Idempotency-Key" in answer.json()["detail"]
    assert event_count(accord) == before


def test_a_replay_comes_before_404_and_412(accord: TestClient) -> None:
    first = accord.post(CLAIMS, json=builders.claim(), headers={"Idempotency-Key": "order", "If-Match": '"2"'})
    assert first.status_code == 201
    stale = accord.post(CLAIMS, json=builders.claim(), headers={"Idempotency-Key": "order", "If-Match": '"2"'})
    assert stale.status_code == 201 and stale.json() == first.json()
    assert accord.post(CLAIMS, json=builders.claim("k9"), headers={"If-Match": '"2"'}).status_code == 412


def test_authentication_comes_before_the_replay(accord: TestClient, anonymous: TestClient) -> None:
    assert accord.post(CLAIMS, json=builders.claim(), headers={"Idempotency-Key": "auth"}).status_code == 201
    answer = anonymous.post(CLAIMS, json=builders.claim(), headers={"Idempotency-Key": "auth"})
    assert answer.status_code == 401


def test_keys_are_scoped_to_the_key_name_method_and_path(accord: TestClient, tmp_path: Any) -> None:
    assert accord.post(CLAIMS, json=builders.claim("k1"), headers={"Idempotency-Key": "shared"}).status_code == 201
    other_path = accord.post("/v1/agreements/accord/accusations", json=builders.accusation(),
                             headers={"Idempotency-Key": "shared"})
    assert other_path.status_code == 201 and other_path.json()["type"] == "AccusationMade"
    token = accord.app.state.runtime.keys.create("scribe", "recorder")
    other_key = accord.post(CLAIMS, json=builders.claim("k2"),
                            headers={"Idempotency-Key": "shared", "Authorization": f"Bearer {token}"})
    assert other_key.status_code == 201 and other_key.json()["recorded_by"] == "scribe"


def test_only_2xx_answers_are_kept(accord: TestClient) -> None:
    refused = accord.post(CLAIMS, json=builders.claim(party="ZZ"), headers={"Idempotency-Key": "fails"})
    assert refused.status_code == 422
    assert key_rows(accord) == []
    # Nothing was kept, so the key is free for a corrected body.
    fixed = accord.post(CLAIMS, json=builders.claim(), headers={"Idempotency-Key": "fails"})
    assert fixed.status_code == 201
    conflict = accord.post(CLAIMS, json=builders.claim(), headers={"Idempotency-Key": "dup"})
    assert conflict.status_code == 409
    assert [row.idem_key for row in key_rows(accord)] == ["fails"]


def test_the_stored_answer_and_its_event_are_one(accord: TestClient) -> None:
    for i in range(5):
        answer = accord.post(CLAIMS, json=builders.claim(f"k{i}"), headers={"Idempotency-Key": f"n{i}"})
        assert answer.status_code == 201
    ids = {e["id"] for e in accord.get("/v1/agreements/accord/events").json()["items"]}
    rows = key_rows(accord)
    assert len(rows) == 5
    for row in rows:
        assert row.state == "done" and row.status == 201
        assert json.loads(row.body)["id"] in ids
        assert json.loads(row.headers)["ETag"] == f'"{json.loads(row.body)["version"]}"'


def test_a_key_in_flight_is_409_and_records_nothing(accord: TestClient) -> None:
    plant(accord, "busy", builders.claim(), "in_flight", timedelta(seconds=1))
    before = event_count(accord)
    answer = accord.post(CLAIMS, json=builders.claim(), headers={"Idempotency-Key": "busy"})
    assert answer.status_code == 409
    assert "in flight" in answer.json()["detail"]
    assert event_count(accord) == before


def test_a_claim_whose_request_died_is_taken_over(accord: TestClient) -> None:
    plant(accord, "orphan", builders.claim(), "in_flight", idempotency.LEASE + timedelta(seconds=5))
    answer = accord.post(CLAIMS, json=builders.claim(), headers={"Idempotency-Key": "orphan"})
    assert answer.status_code == 201
    again = accord.post(CLAIMS, json=builders.claim(), headers={"Idempotency-Key": "orphan"})
    assert again.status_code == 201 and again.json() == answer.json()


def test_a_write_whose_claim_was_taken_over_records_nothing(accord: TestClient) -> None:
    runtime = accord.app.state.runtime
    store = Idempotency(runtime.writer.datastore)
    scope = Scope("admin", "POST", CLAIMS, "stolen")
    body = json.dumps(builders.claim()).encode()
    claim = store.claim(scope, idempotency.fingerprint(body))
    assert isinstance(claim, Claim)
    store.release(claim)  # as if a later request had taken it over
    before = event_count(accord)
    with pytest.raises(idempotency.ClaimLost):
        runtime.writer.record("accord", "claim", body, "admin", hook=store.keep(claim, created))
    assert event_count(accord) == before
    # The writer's cached aggregate did not keep the event that was rolled back.
    assert accord.post(CLAIMS, json=builders.claim()).status_code == 201


def test_answers_older_than_the_retention_are_purged(accord: TestClient) -> None:
    plant(accord, "ancient", builders.claim("k1"), "done", idempotency.RETENTION + timedelta(hours=1))
    plant(accord, "recent", builders.claim("k1"), "done", idempotency.RETENTION - timedelta(hours=1))
    # Another body under the ancient key is not a reuse any more: the first answer is gone.
    answer = accord.post(CLAIMS, json=builders.claim("k2"), headers={"Idempotency-Key": "ancient"})
    assert answer.status_code == 201
    assert accord.post(CLAIMS, json=builders.claim("k3"), headers={"Idempotency-Key": "recent"}).status_code == 422
    assert sorted(row.idem_key for row in key_rows(accord)) == ["ancient", "recent"]
    assert [row.state for row in key_rows(accord) if row.idem_key == "ancient"] == ["done"]


def test_a_malformed_key_is_422(accord: TestClient) -> None:
    for key in ["", "x" * 256, "tab\there"]:
        answer = accord.post(CLAIMS, json=builders.claim(), headers={"Idempotency-Key": key})
        assert answer.status_code == 422, key
        assert answer.json()["errors"][0]["pointer"] == "Idempotency-Key"
    assert accord.post(CLAIMS, json=builders.claim(), headers={"Idempotency-Key": "x" * 255}).status_code == 201


def test_a_new_agreement_is_idempotent_too(client: TestClient) -> None:
    first = client.post("/v1/agreements", json=builders.agreement("pact"), headers={"Idempotency-Key": "new"})
    again = client.post("/v1/agreements", json=builders.agreement("pact"), headers={"Idempotency-Key": "new"})
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    plain_retry = client.post("/v1/agreements", json=builders.agreement("pact"))
    assert plain_retry.status_code == 409


def test_concurrent_requests_with_one_key_record_one_event(accord: TestClient) -> None:
    before = event_count(accord)
    start = threading.Barrier(20)
    answers: list[Any] = []

    def send() -> None:
        start.wait()
        answers.append(accord.post(CLAIMS, json=builders.claim("race"), headers={"Idempotency-Key": "race"}))

    threads = [threading.Thread(target=send) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(a.status_code for a in answers)
    assert set(statuses) <= {201, 409}, statuses
    fresh = [a for a in answers if a.status_code == 201 and "Idempotent-Replayed" not in a.headers]
    assert len(fresh) == 1
    assert all(a.json() == fresh[0].json() for a in answers if a.status_code == 201)
    assert event_count(accord) == before + 1
