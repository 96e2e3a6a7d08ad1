"""The scaled-out topology on PostgreSQL, as real processes: two replicas behind a proxy, each worker kind
with a standby; writers on both replicas while the active workers are SIGKILLed. Nothing may be lost,
duplicated or reordered."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from bench.cluster import ROOT, Cluster
from tests import builders
from tests.conftest import POSTGRES_URL, fresh_database

pytestmark = [pytest.mark.postgres,
              pytest.mark.skipif(not POSTGRES_URL, reason="the cluster runs on PostgreSQL only")]

WRITERS_PER_REPLICA = 2
WRITES_PER_WRITER = 45
KILL_AFTER = 20


class Receiver:
    """A webhook receiver on 127.0.0.1 that verifies each signature and keeps what arrived, in arrival order."""

    def __init__(self) -> None:
        self.secret: str | None = None
        self.arrivals: list[dict[str, Any]] = []
        self.bad_signatures = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                try:
                    payload = Webhook(receiver.secret).verify(body, dict(self.headers.items()))
                except (WebhookVerificationError, ValueError, UnicodeDecodeError):
                    with receiver.lock:
                        receiver.bad_signatures += 1
                    self.send_response(400)
                    self.end_headers()
                    return
                with receiver.lock:
                    receiver.arrivals.append({"id": self.headers["webhook-id"], **payload})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def database(tmp_path: Path) -> Iterator[str]:
    with fresh_database("postgres", tmp_path, migrated=False) as url:
        yield url


@pytest.fixture
def cluster(database: str, tmp_path: Path) -> Iterator[Cluster]:
    topology = Cluster(database, workdir=tmp_path, env={"PACTWATCH_WEBHOOK_ALLOW_PRIVATE": "true",
                                      "PACTWATCH_WEBHOOK_RETRY_SCHEDULE": "1,1,1,1,1,1,1,1,1,1"})
    if topology.kinds != ["projections", "webhooks"]:
        pytest.fail(f"the worker commands are missing: {topology.kinds}")
    with topology:
        yield topology


def client(base_url: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


class Writer(threading.Thread):
    """Records a stream of events on one replica and, after each, reads them back from the other."""

    def __init__(self, name: str, write_url: str, read_url: str, token: str, shared: str) -> None:
        super().__init__(name=name, daemon=True)
        self.write_url, self.read_url, self.token, self.shared = write_url, read_url, token, shared
        self.accepted: list[dict[str, Any]] = []
        self.refused: list[tuple[int, str]] = []
        self.stale_reads: list[str] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with client(self.write_url, self.token) as writes, client(self.read_url, self.token) as reads:
                self._write(writes, "/v1/agreements", builders.agreement(self.name))
                for n in range(WRITES_PER_WRITER):
                    # Half the writes go to one agreement shared by every writer on both replicas.
                    target = self.shared if n % 2 else self.name
                    envelope = self._write(writes, f"/v1/agreements/{target}/commitments",
                                           builders.commitment(f"{self.name}-c{n}"))
                    if envelope is not None:
                        self._read_back(reads, envelope)
        except BaseException as exc:  # reported by the test
            self.error = exc

    def _write(self, writes: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        answer = writes.post(path, json=body)
        if answer.status_code != 201:
            self.refused.append((answer.status_code, answer.text))
            return None
        self.accepted.append(answer.json())
        return answer.json()

    def _read_back(self, reads: httpx.Client, envelope: dict[str, Any]) -> None:
        aid, version = envelope["agreement_id"], envelope["version"]
        if reads.get(f"/v1/agreements/{aid}").json()["version"] < version:
            self.stale_reads.append(f"agreement {aid} v{version}")
        if reads.get(f"/v1/agreements/{aid}/compliance").json()["version"] < version:
            self.stale_reads.append(f"compliance {aid} v{version}")
        timeline = reads.get(f"/v1/agreements/{aid}/timeline").json()["items"]
        if envelope["id"] not in {item["id"] for item in timeline}:
            self.stale_reads.append(f"timeline {aid} v{version}")


def metric(base_url: str, name: str, **labels: str) -> float | None:
    families = text_string_to_metric_families(httpx.get(base_url + "/metrics", timeout=10).text)
    for family in families:
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return None


def wait_until(condition: Any, what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def whole_log(api: httpx.Client) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    after = 0
    while True:
        page = api.get("/v1/events", params={"after": after, "limit": 1000}).json()
        items += page["items"]
        if not page["items"]:
            return items
        after = page["next_after"]


def chain_holds(log: list[dict[str, Any]]) -> bool:
    """API.md: each hash is the SHA-256 of the canonical envelope without position and hash; each prev_hash
    the previous event's hash."""
    prev = "0" * 64
    for envelope in log:
        body = {k: v for k, v in envelope.items() if k not in ("position", "hash")}
        digest = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"),
                                           ensure_ascii=False).encode()).hexdigest()
        if envelope["prev_hash"] != prev or envelope["hash"] != digest:
            return False
        prev = envelope["hash"]
    return True


def test_postgres_cluster_loses_nothing_when_active_workers_are_killed_mid_stream(cluster: Cluster) -> None:
    token = cluster.admin_token
    api = client(cluster.url, token)
    with Receiver() as receiver:
        subscription = api.post("/v1/webhooks", json={"url": receiver.url}).json()
        receiver.secret = subscription["secret"]
        assert api.post("/v1/agreements", json=builders.agreement("shared")).status_code == 201
        replicas = cluster.replica_urls
        writers = [Writer(f"w{r}{n}", replicas[r], replicas[1 - r], token, "shared")
                   for r in range(2) for n in range(WRITERS_PER_REPLICA)]
        for writer in writers:
            writer.start()


        def going() -> bool:
            return any(w.error or w.refused for w in writers) or min(len(w.accepted) for w in writers) >= KILL_AFTER

        wait_until(going, "the writers to get going")
        assert not any(w.error or w.refused for w in writers), [(w.error, w.refused) for w in writers]
        killed = {}
        for kind in ("projections", "webhooks"):
            active = cluster.wait_for_leader(kind)
            cluster.kill(active)
            killed[kind] = active
        for kind, active in killed.items():
            assert cluster.wait_for_leader(kind, timeout=30, other_than=active).alive()
        for writer in writers:
            writer.join(timeout=300)

        for writer in writers:
            assert writer.error is None, writer.error
            assert writer.refused == []
            assert writer.stale_reads == []
        accepted = [envelope for writer in writers for envelope in writer.accepted]
        assert len(accepted) == len(writers) * (WRITES_PER_WRITER + 1)

        # Every accepted event is in the log exactly once, as it was acknowledged; nothing else is.
        log = whole_log(api)
        head = log[-1]["position"]
        by_id = {envelope["id"]: envelope for envelope in log}
        assert len(by_id) == len(log) == len(accepted) + 1
        for envelope in accepted:
            assert by_id[envelope["id"]] == envelope
        assert [e["position"] for e in log] == sorted(e["position"] for e in log)

        # The chain verifies, by the server and by recomputation.
        verify = api.get("/v1/audit/verify").json()
        assert verify["ok"] is True and verify["first_bad_position"] is None
        assert verify["head"]["position"] == head
        assert chain_holds(log)

        # The read models converge, and equal a fresh replay of the store.
        wait_until(lambda: metric(cluster.url, "pactwatch_projection_lag_positions", read_model="compliance") == 0,
                   "the projections to catch up")
        for aid in ["shared"] + [w.name for w in writers]:
            live = api.get(f"/v1/agreements/{aid}/compliance").json()
            replayed = api.get(f"/v1/agreements/{aid}/compliance", params={"version": live["version"]}).json()
            assert live == replayed
            timeline = api.get(f"/v1/agreements/{aid}/timeline").json()
            assert timeline == api.get(f"/v1/agreements/{aid}/timeline", params={"version": live["version"]}).json()
        rebuilt = api.post("/v1/admin/projections/rebuild").json()
        assert rebuilt["identical"] is True

        # Every webhook arrives, signed, in log order (a redelivery after the kill never overtakes).
        wait_until(lambda: metric(cluster.url, "pactwatch_webhook_backlog_positions",
                                  subscription=subscription["id"]) == 0, "the webhooks to be delivered")
        with receiver.lock:
            arrivals = list(receiver.arrivals)
        assert receiver.bad_signatures == 0
        expected = [e["position"] for e in log]
        first_seen: list[int] = []
        for arrival in arrivals:
            position = arrival["data"]["position"]
            assert arrival["id"] == arrival["data"]["id"]
            assert arrival["data"] == by_id[arrival["id"]]
            if position not in first_seen:
                first_seen.append(position)
            assert set(first_seen) == set(expected[:len(first_seen)])
        assert first_seen == expected

    codes = cluster.stop()
    survivors = [p.name for p in cluster.procs if p.role in ("projections", "webhooks")
                 and p not in killed.values()]
    assert {name: codes[name] for name in survivors} == {name: 0 for name in survivors}


def test_postgres_processes_starting_together_migrate_one_at_a_time(database: str) -> None:
    commands = [subprocess.Popen([sys.executable, "-m", "app.cli", "migrate"], cwd=ROOT,
                                 env={"PACTWATCH_DATABASE_URL": database, "PATH": "/usr/bin:/bin"},
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(6)]
    outputs = [(c.wait(120), c.stdout.read().decode()) for c in commands]

    assert [code for code, _ in outputs] == [0] * 6, outputs
    engine = create_engine(database)
    with engine.connect() as conn:
        versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    engine.dispose()
    assert len(versions) == 1


def test_postgres_a_worker_whose_lock_session_is_terminated_steps_down_and_projection_goes_on(
        database: str, tmp_path: Path) -> None:
    with Cluster(database, replicas=1, kinds=["projections"], workdir=tmp_path) as topology:
        first = topology.wait_for_leader("projections")
        api = client(topology.url, topology.admin_token)
        assert api.post("/v1/agreements", json=builders.agreement()).status_code == 201
        engine = create_engine(database)
        with engine.connect() as conn:
            terminated = conn.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = :n"),
                {"n": f"pactwatch:projections:{first.pid}"}).scalars().all()
        engine.dispose()
        assert terminated == [True]

        wait_until(lambda: topology.leader("projections") is not None, "a new leader", timeout=30)
        assert api.post("/v1/agreements/accord/commitments", json=builders.commitment()).status_code == 201
        wait_until(lambda: metric(topology.url, "pactwatch_projection_lag_positions", read_model="compliance") == 0,
                   "the projections to catch up")
        wait_until(lambda: "lost its lock session" in first.tail(400), "the old leader to notice", timeout=30)
        assert first.alive()
        assert sum(1 for p in topology.procs if p.role == "projections" and p.alive()) == 2


def test_postgres_metrics_show_a_leader_per_worker_kind_while_one_holds_its_lock(database: str,
                                                                                tmp_path: Path) -> None:
    with Cluster(database, replicas=1, standbys=0, kinds=["projections"], workdir=tmp_path) as topology:
        assert metric(topology.url, "pactwatch_worker_leader", kind="projections") == 1
        assert metric(topology.url, "pactwatch_worker_leader", kind="webhooks") == 0
        topology.kill(topology.wait_for_leader("projections"))
        wait_until(lambda: metric(topology.url, "pactwatch_worker_leader", kind="projections") == 0,
                   "the lock to be released")
