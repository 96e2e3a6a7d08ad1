"""Webhook delivery end to end: the real app, a real database and real receivers on 127.0.0.1."""
from __future__ import annotations

import json
from datetime import datetime

import pytest
from fastapi.testclient import TestClient

from app.migrate import upgrade
from app.runtime import build
from app.settings import Settings
from tests import builders
from tests.conftest import ADMIN_TOKEN
from tests.e2e.webhook_receiver import Receiver, wait_until

SCHEDULE = "0.1,0.2,0.4,0.8,1.6"


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, admin_token=ADMIN_TOKEN, webhook_allow_private=True,
                    webhook_retry_schedule=SCHEDULE)


def subscribe(client: TestClient, url: str, **filters: object) -> tuple[str, str]:
    answer = client.post("/v1/webhooks", json={"url": url, **filters})
    assert answer.status_code == 201, answer.text
    return answer.json()["id"], answer.json()["secret"]


def record(client: TestClient, count: int, agreement_id: str = "accord") -> list[dict]:
    """An agreement and `count - 1` commitments: `count` events."""
    envelopes = [client.post("/v1/agreements", json=builders.agreement(agreement_id)).json()]
    for n in range(1, count):
        answer = client.post(f"/v1/agreements/{agreement_id}/commitments", json=builders.commitment(f"c{n}"))
        assert answer.status_code == 201, answer.text
        envelopes.append(answer.json())
    return envelopes


def settled(client: TestClient, sid: str, position: int) -> None:
    """Wait until the subscription's cursor has reached `position` (its attempts logged)."""
    wait_until(lambda: client.get(f"/v1/webhooks/{sid}").json()["position"] >= position, f"position {position}")


def deliveries(client: TestClient, sid: str, **query: object) -> list[dict]:
    return client.get(f"/v1/webhooks/{sid}/deliveries", params=query).json()["items"]


def test_every_event_arrives_signed_in_log_order_with_the_contract_headers(client: TestClient,
                                                                           receiver: Receiver) -> None:
    sid, secret = subscribe(client, receiver.url)
    envelopes = record(client, 6)
    settled(client, sid, envelopes[-1]["position"])
    got = receiver.delivered()
    payloads = [r.verify(secret) for r in got]
    assert [p["data"] for p in payloads] == envelopes
    assert [p["type"] for p in payloads] == [e["type"] for e in envelopes]
    assert [p["timestamp"] for p in payloads] == [e["recorded_at"] for e in envelopes]
    assert [r.msg_id for r in got] == [e["id"] for e in envelopes]
    for r in got:
        assert abs(int(r.headers["webhook-timestamp"]) - datetime.now().timestamp()) < 300
        assert r.headers["webhook-signature"].startswith("v1,") and " " not in r.headers["webhook-signature"]
        assert r.headers["content-type"] == "application/json"
    log = deliveries(client, sid)
    assert [d["position"] for d in log] == [e["position"] for e in reversed(envelopes)]
    assert all(d["status_code"] == 204 and d["error"] is None and d["attempt"] == 1 for d in log)
    assert client.get(f"/v1/webhooks/{sid}").json()["position"] == envelopes[-1]["position"]


def test_a_wrong_secret_does_not_verify(client: TestClient, receiver: Receiver) -> None:
    subscribe(client, receiver.url)
    _, other_secret = subscribe(client, "http://127.0.0.1:9/unused")
    record(client, 1)
    first = wait_until(lambda: receiver.delivered(), "a delivery")[0]
    with pytest.raises(Exception, match="signature"):
        first.verify(other_secret)


def test_filters_select_event_types_and_agreements(client: TestClient) -> None:
    stages, other, both = Receiver(), Receiver(), Receiver()
    try:
        _, stage_secret = subscribe(client, stages.url, event_types=["CommitmentMade"])
        _, other_secret = subscribe(client, other.url, agreement_id="other")
        _, both_secret = subscribe(client, both.url, event_types=["AgreementConcluded"], agreement_id="other")
        first = record(client, 3, "accord")
        second = record(client, 2, "other")
        wanted_stage = [e["position"] for e in first + second if e["type"] == "CommitmentMade"]
        wait_until(lambda: len(stages.delivered()) >= 3 and len(other.delivered()) >= 2
                   and len(both.delivered()) >= 1, "the filtered deliveries")
        record(client, 1, "third")
        wait_until(lambda: client.get("/v1/webhooks").json()["items"][0]["position"] == second[-1]["position"] + 1,
                   "the cursors to pass the unmatched event")
        assert stages.delivered_positions(stage_secret) == wanted_stage
        assert other.delivered_positions(other_secret) == [e["position"] for e in second]
        assert both.delivered_positions(both_secret) == [second[0]["position"]]
    finally:
        for rx in (stages, other, both):
            rx.stop()


def test_a_failed_delivery_is_retried_with_the_same_id_and_later_events_wait(client: TestClient,
                                                                             receiver: Receiver) -> None:
    sid, secret = subscribe(client, receiver.url)
    receiver.script(500, 502)
    envelopes = record(client, 3)
    settled(client, sid, envelopes[-1]["position"])
    got = receiver.snapshot()
    assert [r.status for r in got[:3]] == [500, 502, 204]
    assert {r.msg_id for r in got[:3]} == {envelopes[0]["id"]}
    assert [r.verify(secret)["data"]["position"] for r in got] == [envelopes[0]["position"]] * 3 + [
        e["position"] for e in envelopes[1:]]
    log = list(reversed(deliveries(client, sid)))
    assert [(d["attempt"], d["status_code"]) for d in log[:3]] == [(1, 500), (2, 502), (3, 204)]
    assert log[0]["error"] == "HTTP 500" and log[0]["next_retry_at"] > log[0]["at"]
    assert log[2]["error"] is None and log[2]["next_retry_at"] is None


def test_retry_after_is_honoured(client: TestClient, receiver: Receiver) -> None:
    sid, _ = subscribe(client, receiver.url)
    receiver.script((503, {"Retry-After": "2"}))
    envelope = record(client, 1)[0]
    settled(client, sid, envelope["position"])
    first = list(reversed(deliveries(client, sid)))[0]
    waited = datetime.fromisoformat(first["next_retry_at"]) - datetime.fromisoformat(first["at"])
    assert first["status_code"] == 503 and waited.total_seconds() >= 2


def test_a_receiver_down_then_up_loses_nothing(client: TestClient, receiver: Receiver) -> None:
    sid, secret = subscribe(client, receiver.url)
    receiver.stop()
    envelopes = record(client, 4)
    wait_until(lambda: len(deliveries(client, sid)) >= 2, "two refused attempts")
    assert receiver.received == []
    assert all(d["status_code"] is None and "connect" in d["error"] for d in deliveries(client, sid))
    receiver.start()
    wait_until(lambda: len(receiver.delivered()) >= 4, "every event after the receiver came back")
    assert receiver.delivered_positions(secret) == [e["position"] for e in envelopes]
    assert client.get(f"/v1/webhooks/{sid}").json()["active"] is True


def test_a_410_disables_and_resuming_delivers_from_the_first_undelivered_event(client: TestClient,
                                                                                receiver: Receiver) -> None:
    sid, secret = subscribe(client, receiver.url)
    first = record(client, 2)
    wait_until(lambda: len(receiver.delivered()) >= 2, "the first two deliveries")
    receiver.script(410)
    envelopes = first + [client.post("/v1/agreements/accord/commitments", json=builders.commitment(f"d{n}")).json()
                         for n in range(3)]
    wait_until(lambda: client.get(f"/v1/webhooks/{sid}").json()["active"] is False, "the subscription disabled")
    disabled = client.get(f"/v1/webhooks/{sid}").json()
    assert "410" in disabled["disabled_reason"]
    assert len(receiver.snapshot()) == 3
    resumed = client.patch(f"/v1/webhooks/{sid}", json={"active": True}).json()
    assert resumed["active"] is True and resumed["disabled_reason"] is None
    wait_until(lambda: len(receiver.delivered()) >= 5, "the rest after resuming")
    assert receiver.delivered_positions(secret) == [e["position"] for e in envelopes]


def test_an_exhausted_schedule_disables_the_subscription(client: TestClient, receiver: Receiver) -> None:
    sid, _ = subscribe(client, receiver.url)
    receiver.script(*[500] * 6)
    envelopes = record(client, 2)
    wait_until(lambda: client.get(f"/v1/webhooks/{sid}").json()["active"] is False, "the subscription disabled",
               timeout=30)
    attempts = list(reversed(deliveries(client, sid)))
    assert [d["attempt"] for d in attempts] == [1, 2, 3, 4, 5, 6]
    assert len(receiver.snapshot()) == 6 and len({r.msg_id for r in receiver.snapshot()}) == 1
    assert "6 failed attempts" in client.get(f"/v1/webhooks/{sid}").json()["disabled_reason"]
    assert client.patch(f"/v1/webhooks/{sid}", json={"active": True}).status_code == 200
    settled(client, sid, envelopes[-1]["position"])
    assert [r.status for r in receiver.snapshot()] == [500] * 6 + [204, 204]


def test_replay_sends_again_from_a_position_in_order_with_the_same_ids(client: TestClient,
                                                                      receiver: Receiver) -> None:
    sid, secret = subscribe(client, receiver.url)
    envelopes = record(client, 4)
    settled(client, sid, envelopes[-1]["position"])
    answer = client.post(f"/v1/webhooks/{sid}/replay", json={"from_position": envelopes[1]["position"]})
    assert answer.status_code == 202
    wait_until(lambda: len(receiver.delivered()) >= 7, "three replayed deliveries")
    positions = [e["position"] for e in envelopes]
    assert receiver.delivered_positions(secret) == positions + positions[1:]
    assert [r.msg_id for r in receiver.delivered()[4:]] == [e["id"] for e in envelopes[1:]]
    settled(client, sid, positions[-1])
    later = client.post(f"/v1/webhooks/{sid}/replay", json={"from_position": positions[-1] + 5})
    assert later.status_code == 202 and later.json()["position"] == positions[-1]


def test_a_rotated_secret_signs_beside_the_old_one(client: TestClient, receiver: Receiver) -> None:
    sid, old = subscribe(client, receiver.url)
    rotated = client.post(f"/v1/webhooks/{sid}/rotate-secret")
    assert rotated.status_code == 200 and set(rotated.json()) == {"secret"}
    new = rotated.json()["secret"]
    assert new.startswith("whsec_") and new != old
    record(client, 1)
    got = wait_until(lambda: receiver.delivered(), "a delivery")[0]
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    assert got.verify(old) == got.verify(new)
    assert new not in client.get(f"/v1/webhooks/{sid}").text


def test_a_test_ping_is_signed_outside_the_log_and_logged(client: TestClient, receiver: Receiver) -> None:
    sid, secret = subscribe(client, receiver.url)
    answer = client.post(f"/v1/webhooks/{sid}/test")
    assert answer.status_code == 202
    ping = receiver.delivered()[0]
    payload = ping.verify(secret)
    assert payload["type"] == "ping" and payload["data"] == {} and payload["timestamp"].endswith("Z")
    logged = deliveries(client, sid)[0]
    assert logged["event_id"] == ping.msg_id and logged["position"] is None and logged["status_code"] == 204
    assert client.get("/v1/events").json()["items"] == []


def test_a_slow_receiver_delays_no_other_subscription(client: TestClient, receiver: Receiver) -> None:
    fast = Receiver()
    try:
        _, slow_secret = subscribe(client, receiver.url)
        _, fast_secret = subscribe(client, fast.url)
        receiver.hold()
        envelopes = record(client, 3)
        wait_until(lambda: len(fast.delivered()) >= 3, "the fast receiver's deliveries")
        assert receiver.received == [] and receiver.waiting == 1
        receiver.release()
        wait_until(lambda: len(receiver.delivered()) >= 3, "the slow receiver's deliveries")
        positions = [e["position"] for e in envelopes]
        assert fast.delivered_positions(fast_secret) == positions
        assert receiver.delivered_positions(slow_secret) == positions
    finally:
        fast.stop()


def test_a_target_that_now_resolves_to_a_private_address_is_not_called(client: TestClient,
                                                                       receiver: Receiver) -> None:
    sid, secret = subscribe(client, receiver.url)
    sender = client.app.state.runtime.webhooks.sender
    sender.allow_private = False
    envelopes = record(client, 1)
    wait_until(lambda: len(deliveries(client, sid)) >= 2, "two refused attempts")
    assert receiver.received == []
    assert all(d["status_code"] is None and "127.0.0.1" in d["error"] for d in deliveries(client, sid))
    sender.allow_private = True
    wait_until(lambda: receiver.delivered(), "the delivery once allowed")
    assert receiver.delivered_positions(secret) == [envelopes[0]["position"]]


def test_deliveries_page_newest_first(client: TestClient, receiver: Receiver) -> None:
    sid, _ = subscribe(client, receiver.url)
    envelopes = record(client, 5)
    settled(client, sid, envelopes[-1]["position"])
    first = deliveries(client, sid, limit=2)
    second = deliveries(client, sid, limit=2, before=first[-1]["id"])
    rest = deliveries(client, sid, before=second[-1]["id"])
    assert [d["position"] for d in first + second + rest] == [e["position"] for e in reversed(envelopes)]
    assert set(first[0]) >= {"id", "position", "event_id", "attempt", "status_code", "error", "duration_ms", "at"}
    for bad in ({"limit": 0}, {"limit": 1001}, {"before": "x"}):
        assert client.get(f"/v1/webhooks/{sid}/deliveries", params=bad).status_code == 422


def test_a_new_event_wakes_the_dispatcher_at_once(settings: Settings, receiver: Receiver) -> None:
    upgrade(settings.database_url)
    runtime = build(settings)
    worker = runtime.webhooks.worker(poll_seconds=3600)
    try:
        sub = runtime.webhooks.subscriptions.create(receiver.url, None, None, None)
        worker.start()
        envelope = runtime.writer.conclude(json.dumps(builders.agreement()).encode(), "admin")
        wait_until(lambda: receiver.delivered(), "a delivery without polling")
        assert receiver.delivered_positions(sub["secret"]) == [envelope["position"]]
    finally:
        worker.stop()
        runtime.close()
