"""Observability through the real app: /metrics in Prometheus format, request ids, JSON logs without secrets."""
from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from app import logs
from app.main import create_app
from app.settings import Settings
from tests import builders
from tests.conftest import ADMIN_TOKEN
from tests.e2e.webhook_receiver import Receiver, wait_until


def samples(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(answer.text) for s in family.samples}


def value(found: dict, name: str, **labels: str) -> float | None:
    return found.get((name, tuple(sorted(labels.items()))))


@pytest.fixture
def idle(settings: Settings) -> Iterator[TestClient]:
    """The app without its projection worker, so that the read models lag until told to catch up."""
    with TestClient(create_app(settings, workers=False)) as test_client:
        test_client.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
        yield test_client


def test_requests_are_counted_by_route_template_and_status(client: TestClient) -> None:
    client.post("/v1/agreements", json=builders.agreement("truce"))
    client.post("/v1/agreements/truce/commitments", json=builders.commitment("c1"))
    client.post("/v1/agreements/truce/commitments", json=builders.commitment("c1"))
    client.get("/v1/agreements/truce/compliance")

    found = samples(client)

    route = "/v1/agreements/{agreement_id}/commitments"
    assert value(found, "pactwatch_http_requests_total", method="POST", route=route, status="201") == 1
    assert value(found, "pactwatch_http_requests_total", method="POST", route=route, status="409") == 1
    assert value(found, "pactwatch_http_request_duration_seconds_count", method="POST", route=route) == 2
    assert value(found, "pactwatch_http_requests_total", method="GET",
                 route="/v1/agreements/{agreement_id}/compliance", status="200") == 1
    assert not any("truce" in dict(labels).get("route", "") for _, labels in found)


def test_unknown_paths_share_one_label(client: TestClient) -> None:
    client.get("/no/such/path")
    client.get("/another/one")

    found = samples(client)

    assert value(found, "pactwatch_http_requests_total", method="GET", route="unmatched", status="404") == 2


def test_appended_events_are_counted_by_type_and_the_log_head_is_reported(client: TestClient) -> None:
    client.post("/v1/agreements", json=builders.agreement())
    client.post("/v1/agreements/accord/commitments", json=builders.commitment("c1"))
    client.post("/v1/agreements/accord/commitments", json=builders.commitment("c2"))
    client.post("/v1/agreements/accord/commitments", json=builders.commitment("c2"))

    found = samples(client)

    assert value(found, "pactwatch_events_appended_total", type="AgreementConcluded") == 1
    assert value(found, "pactwatch_events_appended_total", type="CommitmentMade") == 2
    head = client.get("/v1/events", params={"limit": 1000}).json()["next_after"]
    assert value(found, "pactwatch_log_head_position") == head
    assert value(found, "pactwatch_store_up") == 1


def test_projection_lag_is_reported_per_read_model_until_caught_up(idle: TestClient) -> None:
    idle.post("/v1/agreements", json=builders.agreement())
    idle.post("/v1/agreements/accord/commitments", json=builders.commitment("c1"))
    idle.post("/v1/agreements/accord/commitments", json=builders.commitment("c2"))

    lagging = samples(idle)
    for model in ("compliance", "timeline"):
        assert value(lagging, "pactwatch_projection_lag_positions", read_model=model) >= 3
        assert value(lagging, "pactwatch_projection_lag_seconds", read_model=model) > 0

    idle.app.state.runtime.read_models.catch_up()

    caught_up = samples(idle)
    for model in ("compliance", "timeline"):
        assert value(caught_up, "pactwatch_projection_lag_positions", read_model=model) == 0
        assert value(caught_up, "pactwatch_projection_lag_seconds", read_model=model) == 0
        assert value(caught_up, "pactwatch_projection_position", read_model=model) == \
            value(caught_up, "pactwatch_log_head_position")


def test_metrics_need_a_reader_when_reads_are_not_public(database_url: str) -> None:
    settings = Settings(database_url=database_url, admin_token=ADMIN_TOKEN, public_read=False)
    with TestClient(create_app(settings, workers=False)) as anonymous:
        assert anonymous.get("/metrics").status_code == 401
        assert anonymous.get("/metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).status_code == 200


def test_a_request_id_is_echoed_or_made(client: TestClient) -> None:
    given = client.get("/healthz", headers={"X-Request-ID": "trace-42.a"})
    made = client.get("/healthz")
    refused = client.get("/healthz", headers={"X-Request-ID": "not a token\t" + "x" * 200})

    assert given.headers["X-Request-ID"] == "trace-42.a"
    assert len(made.headers["X-Request-ID"]) == 32
    assert refused.headers["X-Request-ID"] not in ("", "not a token")
    assert " " not in refused.headers["X-Request-ID"]


def test_each_request_leaves_one_json_access_line_with_its_request_id(client: TestClient) -> None:
    stream = io.StringIO()
    handler = logs.handler(stream)
    access = logging.getLogger("pactwatch.access")
    access.addHandler(handler)
    level = access.level
    access.setLevel(logging.INFO)
    try:
        client.post("/v1/agreements", json=builders.agreement(), headers={"X-Request-ID": "req-1"})
        client.get("/v1/agreements/accord", headers={"X-Request-ID": "req-2"})
    finally:
        access.removeHandler(handler)
        access.setLevel(level)

    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(line["request_id"], line["route"], line["status"]) for line in lines] == [
        ("req-1", "/v1/agreements", 201), ("req-2", "/v1/agreements/{agreement_id}", 200)]
    assert all(line["level"] == "INFO" and line["duration_ms"] >= 0 for line in lines)
    assert ADMIN_TOKEN not in stream.getvalue()


def test_tokens_secrets_and_passwords_never_reach_a_log_line() -> None:
    stream = io.StringIO()
    handler = logs.handler(stream)
    log = logging.getLogger("pactwatch.test")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        log.info("auth %s", "Bearer s3cr3t-admin-token")
        log.info("key pw_AbCdEfGhIjKlMnOp created; secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        log.warning("cannot reach postgresql+psycopg://pactwatch:hunter2@db:5432/pactwatch")
    finally:
        log.removeHandler(handler)

    text = stream.getvalue()
    for secret in ("s3cr3t-admin-token", "AbCdEfGhIjKlMnOp", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "hunter2"):
        assert secret not in text
    assert len(text.splitlines()) == 3


def test_webhook_deliveries_failures_and_backlog_are_reported_per_subscription(database_url: str) -> None:
    settings = Settings(database_url=database_url, admin_token=ADMIN_TOKEN, webhook_allow_private=True,
                        webhook_retry_schedule="0.2,0.2,0.2")
    receiver = Receiver()
    receiver.script(500)
    try:
        with TestClient(create_app(settings)) as admin:
            admin.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
            sid = admin.post("/v1/webhooks", json={"url": receiver.url}).json()["id"]
            admin.post("/v1/agreements", json=builders.agreement())
            admin.post("/v1/agreements/accord/commitments", json=builders.commitment("c1"))
            wait_until(lambda: len(receiver.delivered()) == 2, "two deliveries")

            def settled() -> dict | None:
                found = samples(admin)
                return found if value(found, "pactwatch_webhook_backlog_positions", subscription=sid) == 0 else None

            found = wait_until(settled, "the cursor to reach the head")
    finally:
        receiver.stop()

    assert value(found, "pactwatch_webhook_deliveries_total", subscription=sid) == 2
    assert value(found, "pactwatch_webhook_failures_total", subscription=sid) == 1
    assert value(found, "pactwatch_webhook_active", subscription=sid) == 1


def test_a_subscription_behind_the_head_shows_its_backlog(idle: TestClient) -> None:
    receiver = Receiver()
    try:
        sid = idle.post("/v1/webhooks", json={"url": receiver.url}).json()["id"]
        idle.post("/v1/agreements", json=builders.agreement())
        idle.post("/v1/agreements/accord/commitments", json=builders.commitment("c1"))

        found = samples(idle)
    finally:
        receiver.stop()

    assert value(found, "pactwatch_webhook_backlog_positions", subscription=sid) == 2
    assert value(found, "pactwatch_webhook_deliveries_total", subscription=sid) == 0
