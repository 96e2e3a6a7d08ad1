"""Prometheus metrics: HTTP traffic by route template, appended events, projection lag, webhook backlog.

Counters of this process (requests, appends) live in a registry per app;
figures that belong to the whole deployment (log head, projection lag,
webhook backlog) are read from the shared store at scrape time, so every
replica reports the same values for them.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import sqlalchemy.exc
from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import case, func, select, text
from sqlalchemy.engine import Connection, Engine

from app.deps import PublicRead
from app.leader import lock_key
from app.logs import REQUEST_ID_HEADER, accept_request_id, request_id
from projections.reader import head_position
from projections.schema import events, webhook_deliveries, webhooks
from projections.store import ReadModels, active_generation

access_log = logging.getLogger("pactwatch.access")

READ_MODELS = ("compliance", "timeline")
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_REQUEST_ID_BYTES = REQUEST_ID_HEADER.lower().encode()


class Metrics:
    """The metrics of one app: its own registry, so that several apps in one process do not clash."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("pactwatch_http_requests", "HTTP requests answered, by route template and status",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("pactwatch_http_request_duration_seconds", "HTTP request latency by route template",
                                 ["method", "route"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.appended = Counter("pactwatch_events_appended", "Events appended to the log by this process, by type",
                                ["type"], registry=self.registry)
        self.store: StoreCollector | None = None

    def watch_store(self, engine: Engine, read_models: ReadModels) -> None:
        """Report the log head, projection lag, webhook backlog and worker leaders of this store at each scrape."""
        if self.store is not None:
            self.registry.unregister(self.store)
        self.store = StoreCollector(engine, read_models)
        self.registry.register(self.store)

    def count_appends(self, writer: Any) -> Callable[[], None]:
        """Count every event the writer commits; returns the function that undoes this."""
        previous = writer.after_commit

        def after_commit(envelope: dict[str, Any]) -> None:
            self.appended.labels(envelope["type"]).inc()
            if previous is not None:
                previous(envelope)

        writer.after_commit = after_commit

        def undo() -> None:
            writer.after_commit = previous

        return undo

    def render(self) -> bytes:
        return generate_latest(self.registry)


class StoreCollector(Collector):
    """Figures read from the shared store when Prometheus scrapes."""

    def __init__(self, engine: Engine, read_models: ReadModels) -> None:
        self.engine = engine
        self.read_models = read_models

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("pactwatch_store_up", "1 when the store answered this scrape")
        try:
            with self.engine.connect() as conn:
                families = list(self._collect(conn))
        except sqlalchemy.exc.SQLAlchemyError:
            logging.getLogger("pactwatch.metrics").warning("the store did not answer a scrape", exc_info=True)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _collect(self, conn: Connection) -> Iterator[Metric]:
        head = head_position(conn)
        yield _gauge("pactwatch_log_head_position", "Position of the newest event in the log", head)
        generation = active_generation(conn)
        position = self.read_models.position(generation)
        lag_seconds = 0.0
        if position < head:
            state = conn.execute(select(events.c.state).where(events.c.id > position)
                                 .order_by(events.c.id).limit(1)).scalar()
            if state is not None:
                lag_seconds = max(0.0, time.time() - recorded_at(state))
        positions = GaugeMetricFamily("pactwatch_projection_lag_positions",
                                      "Log positions the read model has not applied yet", labels=["read_model"])
        seconds = GaugeMetricFamily("pactwatch_projection_lag_seconds",
                                    "Age of the oldest event the read model has not applied yet (0 when caught up)",
                                    labels=["read_model"])
        applied = GaugeMetricFamily("pactwatch_projection_position", "Last log position applied to the read model",
                                    labels=["read_model"])
        for name in READ_MODELS:
            positions.add_metric([name], max(0, head - position))
            seconds.add_metric([name], lag_seconds)
            applied.add_metric([name], position)
        yield positions
        yield seconds
        yield applied
        yield from webhook_figures(conn, head)
        if conn.dialect.name == "postgresql":
            yield leader_figures(conn)


WORKER_KINDS = ("projections", "webhooks")


def leader_figures(conn: Connection) -> Metric:
    """Per worker kind, 1 while some process holds its advisory lock (PostgreSQL)."""
    held = set(conn.execute(text(
        "SELECT objid FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = 0 AND objsubid = 1 "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())")).scalars())
    family = GaugeMetricFamily("pactwatch_worker_leader", "1 while an active worker of this kind holds its lock",
                               labels=["kind"])
    for kind in WORKER_KINDS:
        family.add_metric([kind], 1 if lock_key(kind) in held else 0)
    return family


def webhook_figures(conn: Connection, head: int) -> Iterator[Metric]:
    """Per subscription: successful deliveries, failed attempts, the backlog behind its cursor, and whether active."""
    delivered = CounterMetricFamily("pactwatch_webhook_deliveries", "Webhook attempts answered with a 2xx",
                                    labels=["subscription"])
    failed = CounterMetricFamily("pactwatch_webhook_failures", "Webhook attempts that failed (non-2xx, timeout, refused)",
                                 labels=["subscription"])
    backlog = GaugeMetricFamily("pactwatch_webhook_backlog_positions",
                                "Log positions after the subscription's cursor (0 when it is caught up)",
                                labels=["subscription"])
    active = GaugeMetricFamily("pactwatch_webhook_active", "1 while the subscription is active",
                               labels=["subscription"])
    d = webhook_deliveries.c
    ok = (d.status_code >= 200) & (d.status_code < 300)
    counts = {row[0]: (row[1], row[2]) for row in conn.execute(
        select(d.webhook_id, func.sum(case((ok, 1), else_=0)), func.sum(case((ok, 0), else_=1)))
        .group_by(d.webhook_id))}
    for sid, position, is_active in conn.execute(
            select(webhooks.c.id, webhooks.c.position, webhooks.c.active).order_by(webhooks.c.created_at)):
        good, bad = counts.get(sid, (0, 0))
        delivered.add_metric([sid], good or 0)
        failed.add_metric([sid], bad or 0)
        backlog.add_metric([sid], max(0, head - position))
        active.add_metric([sid], 1 if is_active else 0)
    yield from (delivered, failed, backlog, active)


def recorded_at(state: bytes | str) -> float:
    """The Unix time at which a stored event was recorded."""
    stamp = json.loads(state)["timestamp"]
    value = datetime.fromisoformat(stamp["_data_"] if isinstance(stamp, dict) else stamp)
    return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation)
    family.add_metric([], value)
    return family


class Observability:
    """ASGI middleware: a request id in and out, one access-log line and the HTTP metrics per request."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = next((v for k, v in scope.get("headers", ()) if k == _REQUEST_ID_BYTES), None)
        rid = accept_request_id(incoming.decode("latin-1") if incoming is not None else None)
        request_id.set(rid)
        status = 500
        start = time.perf_counter()

        async def send_with_id(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (_REQUEST_ID_BYTES, rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - start
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope["method"]
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(elapsed)
            access_log.info("%s %s %s", method, scope["path"], status, extra={
                "method": method, "route": route, "path": scope["path"], "status": status,
                "duration_ms": round(elapsed * 1000, 3)})


router = APIRouter()


@router.get("/metrics", tags=["health"], include_in_schema=False)
def get_metrics(request: Request, _: PublicRead) -> Response:
    """Prometheus metrics of this replica and of the shared store."""
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
