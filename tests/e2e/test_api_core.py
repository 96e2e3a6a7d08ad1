"""The v1 routes through the real app over httpx, on every configured database."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from fastapi.testclient import TestClient

from projections.envelope import ZERO_HASH, compute_hash
from tests import builders as b

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
RECORDED_AT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
ENVELOPE_KEYS = ["position", "id", "agreement_id", "type", "version", "recorded_at", "occurred_on", "recorded_by",
                 "source", "data", "prev_hash", "hash"]
FULL_SOURCE = {"publisher": "Test Wire", "url": None, "channel": None, "published_on": None, "quote": None}


def post(client: TestClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = client.post(path, json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()


def agreement_with_commitment(client: TestClient, agreement_id: str = "accord") -> dict[str, Any]:
    post(client, "/v1/agreements", b.agreement(agreement_id))
    return post(client, f"/v1/agreements/{agreement_id}/commitments", b.commitment("c1"))


def head(client: TestClient) -> list[dict[str, Any]]:
    return client.get("/v1/events", params={"limit": 1000}).json()["items"]


# Writes: the 201 envelope.

def test_concluding_an_agreement_answers_201_with_its_envelope(client: TestClient) -> None:
    before = datetime.now(timezone.utc)
    answer = client.post("/v1/agreements", json=b.agreement("accord"))
    after = datetime.now(timezone.utc)
    assert answer.status_code == 201
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.headers["location"] == "/v1/agreements/accord"
    assert answer.headers["etag"] == '"1"'
    envelope = answer.json()
    assert list(envelope) == ENVELOPE_KEYS
    assert isinstance(envelope["position"], int) and envelope["position"] >= 1
    assert UUID.match(envelope["id"])
    assert (envelope["agreement_id"], envelope["type"], envelope["version"]) == ("accord", "AgreementConcluded", 1)
    assert RECORDED_AT.match(envelope["recorded_at"])
    recorded = datetime.strptime(envelope["recorded_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    assert before - timedelta(seconds=1) <= recorded <= after + timedelta(seconds=1)
    assert envelope["occurred_on"] == "2025-01-10"
    assert envelope["recorded_by"] == "admin"
    assert envelope["source"] == FULL_SOURCE
    expected = b.agreement("accord")
    del expected["source"]
    assert envelope["data"] == expected
    assert envelope["prev_hash"] == ZERO_HASH
    assert envelope["hash"] == compute_hash(envelope)


WRITES = [
    ("commitment", "commitments", b.commitment("c2", obligor="BB", beneficiary="AA", qualifier="all", value=None),
     {"commitment_id": "c2", "obligor": "BB", "beneficiary": "AA", "action": "release_prisoners",
      "subject": "detainees", "quantity": {"qualifier": "all", "value": None}, "due_by": None, "made_on": None,
      "reciprocal_of": None}, "2025-01-10"),
    ("commitment", "commitments",
     {**b.commitment("c2", obligor="BB", beneficiary="AA", due_by="2025-09-01", made_on="2025-01-12",
                     reciprocal_of="c1"), "quantity": {"qualifier": "unspecified"}},
     {"commitment_id": "c2", "obligor": "BB", "beneficiary": "AA", "action": "release_prisoners",
      "subject": "detainees", "quantity": {"qualifier": "unspecified", "value": None}, "due_by": "2025-09-01",
      "made_on": "2025-01-12", "reciprocal_of": "c1"}, "2025-01-12"),
    ("stage", "stages",
     {**b.stage("s1", completed_on="2025-02-11"),
      "transfers": [{"commitment_id": "c1", "from": "AA", "to": "BB", "count_basis": "undisclosed"}]},
     {"stage_id": "s1", "completed_on": "2025-02-11", "description": None,
      "transfers": [{"commitment_id": "c1", "from": "AA", "to": "BB", "count": None,
                     "count_basis": "undisclosed"}]}, "2025-02-11"),
    ("claim", "claims", b.claim("k1", made_on="2025-02-12"),
     {"claim_id": "k1", "party": "AA", "commitment_id": None, "statement": "we did it", "count": None,
      "made_on": "2025-02-12"}, "2025-02-12"),
    ("accusation", "accusations", b.accusation("a2", commitment_id="c1", made_on="2025-02-13"),
     {"accusation_id": "a2", "accuser": "BB", "accused": "AA", "commitment_id": "c1", "allegation": "stalling",
      "made_on": "2025-02-13"}, "2025-02-13"),
    ("response", "accusations/a1/responses", b.response(stance="disputed_facts", made_on="2025-02-14"),
     {"by": "AA", "stance": "disputed_facts", "statement": "no", "made_on": "2025-02-14", "accusation_id": "a1"},
     "2025-02-14"),
    ("resolution", "accusations/a1/resolution", b.resolution("withdrawn", made_on="2025-02-15"),
     {"outcome": "withdrawn", "note": "", "made_on": "2025-02-15", "accusation_id": "a1"}, "2025-02-15"),
    ("fulfilment", "commitments/c1/fulfilment", b.declaration("BB", "AA", made_on="2025-02-16"),
     {"declared_by": ["BB", "AA"], "made_on": "2025-02-16", "commitment_id": "c1"}, "2025-02-16"),
]


def test_each_write_answers_201_with_the_validated_body_as_data(client: TestClient) -> None:
    agreement_with_commitment(client)
    post(client, "/v1/agreements/accord/accusations", b.accusation("a1"))
    for n, (kind, path, body, data, occurred_on) in enumerate(WRITES, start=4):
        if kind == "commitment":
            body = {**body, "commitment_id": f"c{n}"}
            data = {**data, "commitment_id": f"c{n}"}
        answer = client.post(f"/v1/agreements/accord/{path}", json=body)
        assert answer.status_code == 201, (kind, answer.text)
        envelope = answer.json()
        assert list(envelope) == ENVELOPE_KEYS
        assert envelope["data"] == data, kind
        assert envelope["occurred_on"] == occurred_on, kind
        assert envelope["version"] == n
        assert answer.headers["etag"] == f'"{n}"'
        assert answer.headers["location"] == "/v1/agreements/accord"
        assert envelope["source"] == FULL_SOURCE
        assert envelope["hash"] == compute_hash(envelope)
        assert UUID.match(envelope["id"])


def test_a_correction_answers_201_naming_the_retracted_event(client: TestClient) -> None:
    made = agreement_with_commitment(client)
    envelope = post(client, "/v1/agreements/accord/corrections", b.correction(made["id"], made_on="2025-03-03"))
    assert envelope["type"] == "RecordCorrected"
    assert envelope["data"] == {"event_id": made["id"], "reason": "wrong", "made_on": "2025-03-03"}
    assert envelope["occurred_on"] == "2025-03-03"


def test_the_source_is_kept_exactly_as_given(client: TestClient) -> None:
    source = {"publisher": "Ведомости", "url": "HTTP://Example.COM/a%20b/../c?q=1&q=2#Frag",
              "channel": "Telegram", "published_on": "2025-06-09", "quote": "“a similar number”"}
    envelope = post(client, "/v1/agreements", b.agreement("accord", source=source))
    assert envelope["source"] == source
    assert client.get("/v1/agreements/accord/events").json()["items"][0]["source"] == source


def test_each_accepted_write_appends_exactly_one_event_chained_to_the_last(client: TestClient) -> None:
    agreement_with_commitment(client, "first")
    agreement_with_commitment(client, "second")
    post(client, "/v1/agreements/first/claims", b.claim())
    log = head(client)
    assert [e["version"] for e in log] == [1, 2, 1, 2, 3]
    assert [e["agreement_id"] for e in log] == ["first", "first", "second", "second", "first"]
    positions = [e["position"] for e in log]
    assert positions == sorted(positions) and len(set(positions)) == 5
    assert log[0]["prev_hash"] == ZERO_HASH
    for earlier, later in zip(log, log[1:]):
        assert later["prev_hash"] == earlier["hash"]
    assert all(e["hash"] == compute_hash(e) for e in log)


# Reads.

def test_agreements_are_listed_in_creation_order(client: TestClient) -> None:
    for agreement_id in ("zeta", "alpha", "mid"):
        post(client, "/v1/agreements", b.agreement(agreement_id, title=f"The {agreement_id} accord"))
    post(client, "/v1/agreements/alpha/commitments", b.commitment())
    items = client.get("/v1/agreements").json()["items"]
    assert [i["id"] for i in items] == ["zeta", "alpha", "mid"]
    assert items[1]["title"] == "The alpha accord"
    assert items[1]["parties"] == [{"code": "AA", "name": "Alpha"}, {"code": "BB", "name": "Beta"}]
    assert [i["version"] for i in items] == [1, 2, 1]


def test_no_agreements_is_an_empty_list(client: TestClient) -> None:
    assert client.get("/v1/agreements").json() == {"items": []}


def test_one_agreement_shows_its_parties_live_commitments_and_version(client: TestClient) -> None:
    agreement_with_commitment(client)
    gone = post(client, "/v1/agreements/accord/commitments", b.commitment("c2"))
    post(client, "/v1/agreements/accord/commitments", b.commitment("c3", obligor="BB", beneficiary="AA",
                                                                   reciprocal_of="c1"))
    post(client, "/v1/agreements/accord/corrections", b.correction(gone["id"]))
    answer = client.get("/v1/agreements/accord")
    assert answer.status_code == 200
    assert answer.headers["etag"] == '"5"'
    agreement = answer.json()
    assert agreement["id"] == "accord" and agreement["version"] == 5
    assert agreement["title"] == "Test accord" and agreement["concluded_on"] == "2025-01-10"
    assert agreement["parties"] == [{"code": "AA", "name": "Alpha"}, {"code": "BB", "name": "Beta"}]
    assert [c["commitment_id"] for c in agreement["commitments"]] == ["c1", "c3"]
    assert agreement["commitments"][1]["reciprocal_of"] == "c1"


def test_an_agreements_events_are_its_envelopes_by_version(client: TestClient) -> None:
    written = [post(client, "/v1/agreements", b.agreement("accord"))]
    post(client, "/v1/agreements", b.agreement("other"))
    written.append(post(client, "/v1/agreements/accord/commitments", b.commitment("c1")))
    written.append(post(client, "/v1/agreements/accord/claims", b.claim()))
    items = client.get("/v1/agreements/accord/events").json()["items"]
    assert items == written


def test_the_timeline_orders_by_occurred_on_then_position_with_summaries(client: TestClient) -> None:
    post(client, "/v1/agreements", b.agreement("accord"))
    late = post(client, "/v1/agreements/accord/commitments", b.commitment("c1", made_on="2025-03-01"))
    early = post(client, "/v1/agreements/accord/claims", b.claim("k1", made_on="2025-01-20"))
    same_day = post(client, "/v1/agreements/accord/claims", b.claim("k2", made_on="2025-01-20"))
    items = client.get("/v1/agreements/accord/timeline").json()["items"]
    assert [i["version"] for i in items] == [1, early["version"], same_day["version"], late["version"]]
    for item in items:
        assert set(item) == set(ENVELOPE_KEYS) | {"summary", "retracted"}
        assert isinstance(item["summary"], str) and item["summary"] and "\n" not in item["summary"]
        assert item["retracted"] is False
    assert {k: items[3][k] for k in ENVELOPE_KEYS} == late


def test_the_timeline_marks_retracted_events_when_the_correction_passes_the_filters(client: TestClient) -> None:
    made = agreement_with_commitment(client)
    corrected = post(client, "/v1/agreements/accord/corrections", b.correction(made["id"], made_on="2025-12-01"))

    def retracted(**params: Any) -> dict[int, bool]:
        answer = client.get("/v1/agreements/accord/timeline", params=params)
        assert answer.status_code == 200, answer.text
        return {i["version"]: i["retracted"] for i in answer.json()["items"]}

    assert retracted() == {1: False, 2: True, 3: False}
    assert retracted(version=2) == {1: False, 2: False}
    assert retracted(known_at=made["recorded_at"]) == {1: False, 2: False}
    assert retracted(known_at=corrected["recorded_at"]) == {1: False, 2: True, 3: False}
    assert retracted(as_of="2025-01-10") == {1: False, 2: True, 3: False}
    assert retracted(as_of="2025-01-09") == {3: False}


def test_compliance_reads_the_record_through_each_filter(client: TestClient) -> None:
    post(client, "/v1/agreements", b.agreement("accord"))
    post(client, "/v1/agreements/accord/commitments", b.commitment("c1", value=100, due_by="2025-02-15"))
    first = post(client, "/v1/agreements/accord/stages", b.stage("s1", completed_on="2025-02-01",
                                                                transfers=[b.transfer(count=40)]))
    post(client, "/v1/agreements/accord/stages", b.stage("s2", completed_on="2025-03-01",
                                                         transfers=[b.transfer(count=60)]))
    url = "/v1/agreements/accord/compliance"

    def c1(**params: Any) -> tuple[int, str, int]:
        answer = client.get(url, params=params)
        assert answer.status_code == 200, answer.text
        item = answer.json()["parties"]["AA"]["commitments"][0]
        return item["delivered"]["reported"], item["status"], answer.json()["version"]

    assert c1() == (100, "fulfilled", 4)
    assert c1(as_of="2025-02-10") == (40, "in_progress", 3)
    assert c1(as_of="2025-02-20") == (40, "overdue", 3)
    assert c1(version=3) == (40, "overdue", 3)
    assert c1(known_at=first["recorded_at"]) == (40, "overdue", 3)
    assert c1(known_at=first["recorded_at"], as_of="2025-01-31") == (0, "pending", 2)
    answer = client.get(url, params={"as_of": "2025-01-09"}).json()
    assert (answer["version"], answer["parties"]) == (0, {})


def test_compliance_echoes_filters_with_known_at_in_utc(client: TestClient) -> None:
    agreement_with_commitment(client)
    answer = client.get("/v1/agreements/accord/compliance",
                        params={"known_at": "2099-01-02T01:30:00+02:00", "as_of": "2025-05-05"}).json()
    assert answer["known_at"] == "2099-01-01T23:30:00Z"
    precise = client.get("/v1/agreements/accord/compliance", params={"known_at": "2099-01-01T23:30:00.000250Z"})
    assert precise.json()["known_at"] == "2099-01-01T23:30:00.000250Z"
    assert (answer["as_of"], answer["evaluated_on"]) == ("2025-05-05", "2025-05-05")
    by_known_at = client.get("/v1/agreements/accord/compliance",
                             params={"known_at": "2099-01-02T01:30:00+02:00"}).json()
    assert by_known_at["evaluated_on"] == "2099-01-01"
    today = datetime.now(timezone.utc).date().isoformat()
    bare = client.get("/v1/agreements/accord/compliance").json()
    assert (bare["as_of"], bare["known_at"], bare["evaluated_on"], bare["version"]) == (None, None, today, 2)


# The global log.

def test_the_log_pages_by_position(client: TestClient) -> None:
    agreement_with_commitment(client, "one")
    agreement_with_commitment(client, "two")
    everything = head(client)
    positions = [e["position"] for e in everything]
    page = client.get("/v1/events", params={"limit": 3}).json()
    assert [e["position"] for e in page["items"]] == positions[:3]
    assert page["next_after"] == positions[2]
    rest = client.get("/v1/events", params={"after": page["next_after"]}).json()
    assert [e["position"] for e in rest["items"]] == positions[3:]
    assert rest["next_after"] == positions[-1]
    empty = client.get("/v1/events", params={"after": positions[-1] + 100}).json()
    assert empty == {"items": [], "next_after": positions[-1] + 100}
    assert client.get("/v1/events").json()["items"] == everything


def test_the_log_limit_defaults_to_100_and_allows_1000(client: TestClient) -> None:
    post(client, "/v1/agreements", b.agreement("accord"))
    for n in range(101):
        post(client, "/v1/agreements/accord/claims", b.claim(f"k{n}"))
    assert len(client.get("/v1/events").json()["items"]) == 100
    assert len(client.get("/v1/events", params={"limit": 1000}).json()["items"]) == 102
    assert len(client.get("/v1/events", params={"limit": 1}).json()["items"]) == 1


def test_the_log_filters_by_type(client: TestClient) -> None:
    agreement_with_commitment(client)
    post(client, "/v1/agreements/accord/claims", b.claim())
    post(client, "/v1/agreements", b.agreement("other"))
    concluded = client.get("/v1/events", params={"type": "AgreementConcluded"}).json()
    assert [e["agreement_id"] for e in concluded["items"]] == ["accord", "other"]
    assert concluded["next_after"] == concluded["items"][-1]["position"]
    both = client.get("/v1/events", params=[("type", "CommitmentMade"), ("type", "ProgressClaimed")]).json()
    assert [e["type"] for e in both["items"]] == ["CommitmentMade", "ProgressClaimed"]
    none = client.get("/v1/events", params={"type": "RecordCorrected"}).json()
    assert none == {"items": [], "next_after": 0}


def test_an_unknown_event_type_is_422(client: TestClient) -> None:
    answer = client.get("/v1/events", params={"type": "CommitmentBroken"})
    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["errors"][0]["pointer"] == "type"


# Health.

def test_healthz_and_readyz_answer_200(client: TestClient) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200


# Read-your-writes.

@pytest.mark.parametrize("workers", ["running", "stopped"])
def test_a_read_right_after_a_201_reflects_it(client: TestClient, workers: str) -> None:
    if workers == "stopped":
        client.app.state.runtime.stop_workers()
    agreement_with_commitment(client)
    for n in range(5):
        stage = post(client, "/v1/agreements/accord/stages",
                     b.stage(f"s{n}", transfers=[b.transfer(count=20)]))
        compliance = client.get("/v1/agreements/accord/compliance").json()
        assert compliance["version"] == stage["version"]
        assert compliance["parties"]["AA"]["commitments"][0]["delivered"]["reported"] == 20 * (n + 1)
        assert client.get("/v1/agreements/accord").headers["etag"] == f'"{stage["version"]}"'
        timeline = client.get("/v1/agreements/accord/timeline").json()["items"]
        assert timeline[-1]["id"] == stage["id"]
    corrected = post(client, "/v1/agreements/accord/corrections", b.correction(stage["id"]))
    assert client.get("/v1/agreements/accord/compliance").json()["version"] == corrected["version"]
    assert client.get("/v1/agreements/accord/timeline").json()["items"][-2]["retracted"] is True
    assert client.get("/v1/agreements/accord").json()["version"] == corrected["version"]


def test_a_repeated_compliance_read_is_served_without_reloading_the_stored_state(
        client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    agreement_with_commitment(client)
    read_models = client.app.state.runtime.read_models
    read_models.catch_up()
    loads: list[str] = []
    original = read_models.compliance_state

    def counted(conn: Any, agreement_id: str) -> Any:
        loads.append(agreement_id)
        return original(conn, agreement_id)

    monkeypatch.setattr(read_models, "compliance_state", counted)
    first = client.get("/v1/agreements/accord/compliance")
    assert client.get("/v1/agreements/accord/compliance").content == first.content
    assert len(loads) <= 1
    stage = post(client, "/v1/agreements/accord/stages", b.stage(transfers=[b.transfer(count=7)]))
    after = client.get("/v1/agreements/accord/compliance").json()
    assert after["version"] == stage["version"]
    assert after["parties"]["AA"]["commitments"][0]["delivered"]["reported"] == 7


def test_events_after_the_largest_position_is_an_empty_page(client: TestClient) -> None:
    answer = client.get("/v1/events", params={"after": str(2**63 - 1)})
    assert answer.status_code == 200
    assert answer.json() == {"items": [], "next_after": 2**63 - 1}
    assert client.get("/v1/events", params={"after": str(2**63)}).status_code == 422
