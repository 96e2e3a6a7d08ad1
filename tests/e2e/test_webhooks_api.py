"""Webhook subscriptions through the HTTP API: shape, validation, access and the SSRF guard."""
from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from app.webhooks import subscriptions
from tests import builders
from tests.conftest import ADMIN_TOKEN
from tests.e2e.webhook_receiver import Receiver

PUBLIC_FIELDS = {"id", "url", "event_types", "agreement_id", "description", "active", "disabled_reason"}


@pytest.fixture
def guarded(database_url: str) -> Iterator[TestClient]:
    """The app with the SSRF guard on (private targets refused)."""
    settings = Settings(database_url=database_url, admin_token=ADMIN_TOKEN, webhook_allow_private=False)
    with TestClient(create_app(settings, workers=False)) as test_client:
        test_client.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
        yield test_client


def test_a_subscription_shows_its_secret_once_and_never_again(client: TestClient, receiver: Receiver) -> None:
    answer = client.post("/v1/webhooks", json={"url": receiver.url, "event_types": ["StageCompleted"],
                                               "agreement_id": "accord", "description": "newsroom"})
    assert answer.status_code == 201
    created = answer.json()
    assert PUBLIC_FIELDS | {"secret"} <= set(created)
    assert created["secret"].startswith("whsec_")
    assert len(base64.b64decode(created["secret"][len("whsec_"):])) == 32
    assert (created["url"], created["event_types"], created["agreement_id"], created["description"],
            created["active"], created["disabled_reason"]) == (receiver.url, ["StageCompleted"], "accord",
                                                               "newsroom", True, None)
    assert answer.headers["location"] == f"/v1/webhooks/{created['id']}"
    one = client.get(f"/v1/webhooks/{created['id']}").json()
    listed = client.get("/v1/webhooks").json()["items"]
    assert "secret" not in one and all("secret" not in item for item in listed)
    assert created["secret"] not in client.get("/v1/webhooks").text
    assert [item["id"] for item in listed] == [created["id"]]
    assert {k: one[k] for k in PUBLIC_FIELDS} == {k: created[k] for k in PUBLIC_FIELDS}


def test_each_subscription_gets_its_own_secret(client: TestClient, receiver: Receiver) -> None:
    first = client.post("/v1/webhooks", json={"url": receiver.url}).json()
    second = client.post("/v1/webhooks", json={"url": receiver.url}).json()
    assert first["id"] != second["id"] and first["secret"] != second["secret"]
    assert first["event_types"] is None and first["agreement_id"] is None


def test_patch_changes_filters_and_delete_removes(client: TestClient, receiver: Receiver) -> None:
    sid = client.post("/v1/webhooks", json={"url": receiver.url}).json()["id"]
    changed = client.patch(f"/v1/webhooks/{sid}", json={"event_types": ["AccusationMade", "AccusationMade"],
                                                        "description": "desk", "active": False})
    assert changed.status_code == 200
    assert (changed.json()["event_types"], changed.json()["description"], changed.json()["active"]) == (
        ["AccusationMade"], "desk", False)
    assert client.get(f"/v1/webhooks/{sid}").json()["active"] is False
    assert client.patch(f"/v1/webhooks/{sid}", json={"event_types": None}).json()["event_types"] is None
    assert client.delete(f"/v1/webhooks/{sid}").status_code == 204
    for method, path in [("GET", ""), ("PATCH", ""), ("DELETE", ""), ("GET", "/deliveries"),
                         ("POST", "/replay"), ("POST", "/rotate-secret"), ("POST", "/test")]:
        gone = client.request(method, f"/v1/webhooks/{sid}{path}", json={"from_position": 1} if method != "GET"
                              else None)
        assert gone.status_code == 404, (method, path)
        assert gone.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize("body, pointer", [
    ({"url": "http://127.0.0.1:9/x", "event_types": ["Nope"]}, "/event_types/0"),
    ({"url": "http://127.0.0.1:9/x", "event_types": []}, "/event_types"),
    ({"url": "http://127.0.0.1:9/x", "agreement_id": "Not A Slug"}, "/agreement_id"),
    ({"url": "http://127.0.0.1:9/x", "colour": "red"}, "/colour"),
    ({"url": 5}, "/url"),
    ({}, "/url"),
    ({"url": "ftp://127.0.0.1/x"}, "/url"),
    ({"url": "not a url"}, "/url"),
])
def test_a_bad_subscription_is_refused_with_a_pointer(client: TestClient, body: dict, pointer: str) -> None:
    answer = client.post("/v1/webhooks", json=body)
    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert pointer in [e["pointer"] for e in answer.json()["errors"]]
    assert client.get("/v1/webhooks").json()["items"] == []


def test_patch_refuses_null_url_and_active(client: TestClient, receiver: Receiver) -> None:
    sid = client.post("/v1/webhooks", json={"url": receiver.url}).json()["id"]
    for body in ({"url": None}, {"active": None}, {"active": "yes"}, {"secret": "x"}):
        assert client.patch(f"/v1/webhooks/{sid}", json=body).status_code == 422, body
    assert client.post(f"/v1/webhooks/{sid}/replay", json={"from_position": -1}).status_code == 422
    assert client.post(f"/v1/webhooks/{sid}/replay", json={"from_position": "1"}).status_code == 422


def test_webhooks_need_the_admin_role(client: TestClient, receiver: Receiver) -> None:
    token = client.app.state.runtime.keys.create("desk", "recorder")
    sid = client.post("/v1/webhooks", json={"url": receiver.url}).json()["id"]
    anonymous = TestClient(client.app)
    recorder = TestClient(client.app, headers={"Authorization": f"Bearer {token}"})
    for method, path in [("POST", ""), ("GET", ""), ("GET", f"/{sid}"), ("PATCH", f"/{sid}"),
                         ("DELETE", f"/{sid}"), ("GET", f"/{sid}/deliveries"), ("POST", f"/{sid}/replay"),
                         ("POST", f"/{sid}/rotate-secret"), ("POST", f"/{sid}/test")]:
        assert anonymous.request(method, f"/v1/webhooks{path}", json={}).status_code == 401, (method, path)
        assert recorder.request(method, f"/v1/webhooks{path}", json={}).status_code == 403, (method, path)
    assert client.get(f"/v1/webhooks/{sid}").status_code == 200


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8080/hook", "http://localhost/hook", "http://[::1]/hook", "http://10.1.2.3/hook",
    "http://192.168.0.7/hook", "http://169.254.169.254/latest/meta-data", "http://100.64.0.1/hook",
    "http://0.0.0.0/hook", "http://[::ffff:127.0.0.1]/hook", "http://224.0.0.1/hook",
    "http://no-such-host.invalid/hook", "file:///etc/passwd", "gopher://example.com/",
])
def test_private_and_unresolvable_targets_are_refused(guarded: TestClient, url: str) -> None:
    answer = guarded.post("/v1/webhooks", json={"url": url})
    assert answer.status_code == 422, answer.text
    assert [e["pointer"] for e in answer.json()["errors"]] == ["/url"]
    assert guarded.get("/v1/webhooks").json()["items"] == []


def test_a_patch_to_a_private_target_is_refused(guarded: TestClient) -> None:
    runtime = guarded.app.state.runtime
    created = runtime.webhooks.subscriptions.create("https://example.com/hook", None, None, None)
    answer = guarded.patch(f"/v1/webhooks/{created['id']}", json={"url": "http://127.0.0.1/hook"})
    assert answer.status_code == 422
    assert guarded.get(f"/v1/webhooks/{created['id']}").json()["url"] == "https://example.com/hook"


def test_a_new_subscription_starts_after_the_head_of_the_log(client: TestClient, receiver: Receiver) -> None:
    client.post("/v1/agreements", json=builders.agreement())
    created = client.post("/v1/webhooks", json={"url": receiver.url}).json()
    assert created["position"] == client.get("/v1/audit/head").json()["position"]


def test_the_delivery_log_keeps_only_the_newest_attempts(client: TestClient, receiver: Receiver,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(subscriptions, "DELIVERIES_KEPT", 4)
    monkeypatch.setattr(subscriptions, "PRUNE_EVERY", 3)
    store = client.app.state.runtime.webhooks.subscriptions
    sid = client.post("/v1/webhooks", json={"url": receiver.url}).json()["id"]
    for n in range(10):
        attempt = subscriptions.Attempt(position=None, event_id=f"e{n}", attempt=1, status_code=204, error=None,
                                        duration_ms=1, at=f"2025-01-01T00:00:0{n}.000000Z")
        assert store.advance(store.load(sid), 0, [attempt])
    kept = [d["event_id"] for d in client.get(f"/v1/webhooks/{sid}/deliveries").json()["items"]]
    assert kept[:4] == ["e9", "e8", "e7", "e6"] and len(kept) < 10
