"""Optimistic concurrency: ETags, If-Match, and racing writers that never lose a write."""
from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests import builders

CLAIMS = "/v1/agreements/accord/claims"
RACERS = 40


@pytest.fixture
def accord(client: TestClient) -> TestClient:
    assert client.post("/v1/agreements", json=builders.agreement()).status_code == 201
    assert client.post("/v1/agreements/accord/commitments", json=builders.commitment()).status_code == 201
    return client


def versions(client: TestClient) -> list[int]:
    return [e["version"] for e in client.get("/v1/agreements/accord/events").json()["items"]]


def race(n: int, send: Callable[[int], Any]) -> list[Any]:
    """Run n requests at once (released together by a barrier); their answers in request order."""
    start = threading.Barrier(n)
    answers: list[Any] = [None] * n

    def run(i: int) -> None:
        start.wait()
        answers[i] = send(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers


def test_every_write_and_the_agreement_answer_their_version_as_etag(accord: TestClient) -> None:
    assert accord.get("/v1/agreements/accord").headers["ETag"] == '"2"'
    answer = accord.post(CLAIMS, json=builders.claim())
    assert answer.headers["ETag"] == '"3"' == f'"{answer.json()["version"]}"'
    assert accord.get("/v1/agreements/accord").headers["ETag"] == '"3"'


def test_a_current_if_match_writes(accord: TestClient) -> None:
    etag = accord.get("/v1/agreements/accord").headers["ETag"]
    answer = accord.post(CLAIMS, json=builders.claim(), headers={"If-Match": etag})
    assert answer.status_code == 201
    assert answer.headers["ETag"] == '"3"'


def test_an_if_match_that_is_not_current_is_412_and_records_nothing(accord: TestClient) -> None:
    for if_match in ['"1"', '"3"', '"0"', 'W/"1"', '"two"', '""', '"99999999999999999999"']:
        answer = accord.post(CLAIMS, json=builders.claim(), headers={"If-Match": if_match})
        assert answer.status_code == 412, (if_match, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
    assert versions(accord) == [1, 2]


def test_if_match_star_matches_any_existing_agreement(accord: TestClient) -> None:
    assert accord.post(CLAIMS, json=builders.claim(), headers={"If-Match": "*"}).status_code == 201
    unknown = accord.post("/v1/agreements/nowhere/claims", json=builders.claim(), headers={"If-Match": "*"})
    assert unknown.status_code == 404


def test_racing_writers_without_if_match_are_each_recorded_exactly_once(accord: TestClient) -> None:
    answers = race(RACERS, lambda i: accord.post(CLAIMS, json=builders.claim(f"k{i}", commitment_id="c1")))
    assert [a.status_code for a in answers] == [201] * RACERS, [a.text for a in answers if a.status_code != 201]
    assert sorted(int(a.headers["ETag"].strip('"')) for a in answers) == list(range(3, RACERS + 3))
    events = accord.get("/v1/agreements/accord/events").json()["items"]
    assert [e["version"] for e in events] == list(range(1, RACERS + 3))
    recorded = Counter(e["data"]["claim_id"] for e in events if e["type"] == "ProgressClaimed")
    assert recorded == Counter(f"k{i}" for i in range(RACERS))
    assert {a.json()["id"] for a in answers} == {e["id"] for e in events[2:]}
    compliance = accord.get("/v1/agreements/accord/compliance").json()
    assert sorted(compliance["parties"]["AA"]["commitments"][0]["claims"]) == sorted(recorded)
    assert accord.get("/v1/audit/verify").json()["ok"] is True


def test_racing_writers_with_one_if_match_let_exactly_one_through(accord: TestClient) -> None:
    answers = race(RACERS, lambda i: accord.post(CLAIMS, json=builders.claim(f"k{i}"), headers={"If-Match": '"2"'}))
    statuses = Counter(a.status_code for a in answers)
    assert statuses == Counter({201: 1, 412: RACERS - 1})
    assert versions(accord) == [1, 2, 3]


def test_racing_writers_with_one_idempotency_key_record_one_event(accord: TestClient) -> None:
    answers = race(RACERS, lambda i: accord.post(CLAIMS, json=builders.claim("once"),
                                                 headers={"Idempotency-Key": "once"}))
    assert {a.status_code for a in answers} <= {201, 409}
    assert versions(accord) == [1, 2, 3]
    first = [a for a in answers if a.status_code == 201 and "Idempotent-Replayed" not in a.headers]
    assert len(first) == 1
    retry = accord.post(CLAIMS, json=builders.claim("once"), headers={"Idempotency-Key": "once"})
    assert retry.status_code == 201 and retry.json() == first[0].json()


def test_racing_writers_on_many_agreements_lose_nothing(client: TestClient) -> None:
    for name in ("east", "west"):
        assert client.post("/v1/agreements", json=builders.agreement(name)).status_code == 201
        assert client.post(f"/v1/agreements/{name}/commitments", json=builders.commitment()).status_code == 201
    answers = race(RACERS, lambda i: client.post(f"/v1/agreements/{('east', 'west')[i % 2]}/claims",
                                                 json=builders.claim(f"k{i}")))
    assert [a.status_code for a in answers] == [201] * RACERS
    for name in ("east", "west"):
        events = client.get(f"/v1/agreements/{name}/events").json()["items"]
        assert [e["version"] for e in events] == list(range(1, RACERS // 2 + 3))
    log = client.get("/v1/events", params={"limit": 1000}).json()["items"]
    assert len({e["position"] for e in log}) == len(log) == RACERS + 4
