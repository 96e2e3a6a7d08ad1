"""The benchmark suite: one command, one table, each figure next to its baseline measured in the same run.

    python -m bench.suite                       # make bench; about ten minutes on two cores
    python -m bench.suite --rebuild-events 200000 --seconds 5     # a quicker pass

Everything runs on PostgreSQL (`--url`, a server URL; fresh databases are
made and dropped beside it) in the scaled-out topology of bench/cluster.py:
API replicas behind the proxy, each worker kind active with a standby.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy import create_engine, select
from sqlalchemy.engine import make_url

from bench import load
from bench.cluster import Cluster, create_database, drop_database, free_port
from bench.core import Row, percentile, print_table

DEFAULT_SERVER = os.environ.get("PACTWATCH_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
LAG_RATE = 200.0


def _nums(values: list[float]) -> str:
    return "/".join(f"{v:.0f}" for v in values)


@contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    url = create_database(server_url, prefix="pw_bench")
    try:
        yield url
    finally:
        drop_database(url)


def psycopg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


# Baselines in-process.

def commitment_body(cid: str) -> dict[str, Any]:
    return {"commitment_id": cid, "obligor": "AA", "beneficiary": "BB", "action": "release_prisoners",
            "subject": "detainees", "quantity": {"qualifier": "exact", "value": 100}, "source": {"publisher": "Bench"}}


def agreement_body(aid: str) -> dict[str, Any]:
    return {"id": aid, "title": "Bench accord", "concluded_on": "2025-01-10", "venue": "Geneva",
            "parties": [{"code": "AA", "name": "Alpha"}, {"code": "BB", "name": "Beta"}], "mediators": [],
            "source": {"publisher": "Bench"}}


def inprocess_save_rate(url: str, seconds: float) -> float:
    """Events/s of the eventsourcing Application, one event per save, on this store."""
    import json

    from app.body import validate
    from app.migrate import upgrade
    from app.runtime import build
    from app.schemas import BODIES, split
    from app.settings import Settings
    from domain.agreement import event_meta

    upgrade(url)
    runtime = build(Settings(database_url=url))
    try:
        app = runtime.app

        def body(kind: str, value: dict[str, Any]) -> Any:
            return lambda: split(validate(BODIES[kind], json.dumps(value).encode()))

        def meta() -> dict[str, Any]:
            return event_meta(str(uuid.uuid4()), "bench", datetime.now(timezone.utc))

        app.conclude_agreement(body("agreement", agreement_body("inproc")), meta())
        n = 0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            app.record("inproc", "commitment", body("commitment", commitment_body(f"c{n}")), meta())
            n += 1
        return n / (time.perf_counter() - start)
    finally:
        runtime.close()


def writer_rate(url: str, seconds: float) -> float:
    """Events/s of the full in-process write path (validation, use case, hash chain), one event per call."""
    import json

    from app.migrate import upgrade
    from app.runtime import build
    from app.settings import Settings

    upgrade(url)
    runtime = build(Settings(database_url=url))
    try:
        runtime.writer.conclude(json.dumps(agreement_body("writer")).encode(), "bench")
        n = 0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            runtime.writer.record("writer", "commitment", json.dumps(commitment_body(f"c{n}")).encode(), "bench")
            n += 1
        return n / (time.perf_counter() - start)
    finally:
        runtime.close()


def raw_insert_rate(url: str, seconds: float) -> float:
    """Rows/s of a bare INSERT and COMMIT per row through psycopg, on this server."""
    with psycopg.connect(psycopg_dsn(url)) as conn:
        conn.execute("CREATE TABLE bench_raw (id bigserial PRIMARY KEY, originator_id uuid NOT NULL, "
                     "originator_version bigint NOT NULL, topic text NOT NULL, state bytea NOT NULL)")
        conn.commit()
        state = b'{"data": "' + b"x" * 400 + b'"}'
        origin = uuid.uuid4()
        n = 0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            conn.execute("INSERT INTO bench_raw (originator_id, originator_version, topic, state) "
                         "VALUES (%s, %s, %s, %s)", (origin, n, "domain.agreement:Agreement.CommitmentMade", state))
            conn.commit()
            n += 1
        return n / (time.perf_counter() - start)


# Through HTTP, in the cluster.

def http_append_rates(server_url: str, seconds: float, connections: int, rounds: int) -> dict[str, Any]:
    """Accepted appends/s through a proxy to one replica and through one to both, alternated `rounds` times
    on the same cluster (workers running), so that both see the same machine and the same store."""
    with tempfile.TemporaryDirectory() as workdir, fresh_database(server_url) as url, \
            Cluster(url, replicas=2, workdir=Path(workdir)) as cluster:
        solo = cluster.start_proxy(upstreams=[cluster.procs[0].port], name="proxy-solo")
        proxies = {1: f"http://127.0.0.1:{solo.port}", 2: cluster.url}
        headers = {"Authorization": f"Bearer {cluster.admin_token}"}
        with httpx.Client(base_url=cluster.url, headers=headers) as api:
            for w in range(connections):
                assert api.post("/v1/agreements", json=agreement_body(f"w{w}")).status_code == 201
        rates: dict[int, list[float]] = {1: [], 2: []}
        statuses: dict[int, dict[int, int]] = {1: {}, 2: {}}
        for r in range(rounds):
            for replicas, proxy in proxies.items():
                def next_request(w: int, n: int, tag: str = f"{replicas}-{r}") -> load.Request:
                    return "POST", f"/v1/agreements/w{w}/commitments", commitment_body(f"c{tag}-{n}")

                run = asyncio.run(load.closed_loop(proxy, headers, connections, seconds, next_request))
                rates[replicas].append(run.rate(201))
                for status, count in run.statuses().items():
                    statuses[replicas][status] = statuses[replicas].get(status, 0) + count
    return {"one": statistics.median(rates[1]), "two": statistics.median(rates[2]), "rates": rates,
            "statuses": statuses}


class Receiver:
    """A webhook receiver in its own process, so that its timing does not share the load generator's GIL."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.out = workdir / "arrivals.txt"
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.suite", "--receiver", str(self.port),
                                      str(self.out)], cwd=Path(__file__).resolve().parent.parent)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{self.port}/", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.1)
        raise TimeoutError("the webhook receiver did not start")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def arrivals(self) -> dict[str, float]:
        """First arrival time of each webhook id."""
        seen: dict[str, float] = {}
        if self.out.exists():
            for line in self.out.read_text().splitlines():
                wid, _, at = line.partition(" ")
                if wid and at:
                    seen.setdefault(wid, float(at))
        return seen

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(10)


def serve_receiver(port: int, out: str) -> None:
    """Answer 204 to every POST and note `webhook-id time` per arrival (runs as `--receiver`)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    sink = open(out, "a", buffering=1)  # noqa: SIM115 - kept open for the server's lifetime
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            at = time.time()
            with lock:
                sink.write(f"{self.headers.get('webhook-id')} {at}\n")
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    server.serve_forever()
    sink.close()


def epoch(recorded_at: str) -> float:
    return datetime.strptime(recorded_at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()


class ProjectionWatch:
    """Polls the read models' tracked position and notes when each position was first reached."""

    def __init__(self, url: str, interval: float = 0.005) -> None:
        from projections.schema import tracking

        self.engine = create_engine(url, pool_size=1)
        self.query = select(tracking.c.notification_id).where(tracking.c.application_name.like("read-models:%"))
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ProjectionWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.engine.dispose()

    def _run(self) -> None:
        with self.engine.connect() as conn:
            while not self._stop.is_set():
                position = max(conn.execute(self.query).scalars().all() or [0])
                conn.rollback()
                self.samples.append((time.time(), position))
                self._stop.wait(self.interval)

    def applied_at(self, position: int) -> float | None:
        for at, tracked in self.samples:
            if tracked >= position:
                return at
        return None


def lags(answers: list[load.Answer], watch: ProjectionWatch, arrivals: dict[str, float]) -> tuple[list[float], list[float]]:
    """Seconds from recording to the read model, and from recording to the receiver, per accepted event."""
    projection, webhook = [], []
    for answer in answers:
        if answer.status != 201:
            continue
        envelope = answer.json()
        recorded = epoch(envelope["recorded_at"])
        applied = watch.applied_at(envelope["position"])
        if applied is not None:
            projection.append(max(0.0, applied - recorded))
        if envelope["id"] in arrivals:
            webhook.append(max(0.0, arrivals[envelope["id"]] - recorded))
    return projection, webhook


def lag_and_webhooks(server_url: str, seconds: float) -> dict[str, Any]:
    """Projection lag and webhook latency, idle (one event at a time) and at LAG_RATE appends/s; then a failover."""
    with tempfile.TemporaryDirectory() as workdir, fresh_database(server_url) as url, \
            Cluster(url, replicas=2, env={"PACTWATCH_WEBHOOK_ALLOW_PRIVATE": "true"},
                    workdir=Path(workdir) / "cluster") as cluster:
        receiver = Receiver(Path(workdir))
        headers = {"Authorization": f"Bearer {cluster.admin_token}"}
        try:
            with httpx.Client(base_url=cluster.url, headers=headers) as api:
                subscription = api.post("/v1/webhooks", json={"url": receiver.url}).json()
                for w in range(8):
                    assert api.post("/v1/agreements", json=agreement_body(f"w{w}")).status_code == 201

            def next_request(w: int, n: int) -> load.Request:
                return "POST", f"/v1/agreements/w{n % 8}/commitments", commitment_body(f"c{n}")

            with ProjectionWatch(url) as watch:
                idle = asyncio.run(load.open_loop(cluster.url, headers, 10.0, 4.0, next_request, connections=1))
                time.sleep(1.0)
                busy = asyncio.run(load.open_loop(
                    cluster.url, headers, LAG_RATE, seconds,
                    lambda w, n: next_request(w, n + 100_000), connections=64))
                expected = {a.json()["id"] for a in idle.answers + busy.answers if a.status == 201}
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and not expected <= receiver.arrivals().keys():
                    time.sleep(0.2)
                time.sleep(0.5)
            arrivals = receiver.arrivals()
            missing = sorted(a.json()["position"] for a in idle.answers + busy.answers
                             if a.status == 201 and a.json()["id"] not in arrivals)
            if missing:
                with httpx.Client(base_url=cluster.url, headers=headers) as api:
                    state = api.get(f"/v1/webhooks/{subscription['id']}").json()
                    tried = {d["position"] for d in api.get(f"/v1/webhooks/{subscription['id']}/deliveries",
                                                              params={"limit": 1000}).json()["items"]}
                print(f"webhooks not arrived at positions {missing[:20]}; subscription {state}; "
                      f"attempted among the last 1000: {sorted(set(missing) & tried)[:20]}", file=sys.stderr)
            idle_lag, idle_hook = lags(idle.answers, watch, arrivals)
            busy_lag, busy_hook = lags(busy.answers, watch, arrivals)
            failover = measure_failover(cluster)
        finally:
            receiver.stop()
    return {"idle_lag": idle_lag, "busy_lag": busy_lag, "idle_hook": idle_hook, "busy_hook": busy_hook,
            "busy_rate": busy.rate(201), "busy_statuses": busy.statuses(), "failover": failover,
            "missing_hooks": len(missing)}


def measure_failover(cluster: Cluster) -> dict[str, float]:
    """Seconds from SIGKILL of each active worker until its standby holds the lock."""
    out = {}
    for kind in cluster.kinds or []:
        active = cluster.wait_for_leader(kind)
        killed_at = time.monotonic()
        cluster.kill(active)
        cluster.wait_for_leader(kind, timeout=30, other_than=active)
        out[kind] = time.monotonic() - killed_at
    return out


# Rebuild: bench/core.py's phases (raw read, fold from nothing, rebuild with proof), each in its own process.

def rebuild_rates(server_url: str, events: int) -> dict[str, dict[str, Any]]:
    from bench.core import measure_rebuild

    return measure_rebuild("postgres", events, server_url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default=DEFAULT_SERVER, help="PostgreSQL server URL (fresh databases beside it)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each throughput and lag run")
    parser.add_argument("--connections", type=int, default=16, help="concurrent HTTP writers")
    parser.add_argument("--rounds", type=int, default=3, help="alternated repetitions of each rate (medians)")
    parser.add_argument("--rebuild-events", type=int, default=1_000_000)
    parser.add_argument("--receiver", nargs=2, metavar=("PORT", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receiver:
        serve_receiver(int(args.receiver[0]), args.receiver[1])
        return
    if not args.url.startswith("postgresql"):
        parser.error("the suite runs on PostgreSQL: --url postgresql+psycopg://...")

    def step(what: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {what}", file=sys.stderr, flush=True)

    step("baselines: in-process eventsourcing save, in-process Writer, raw INSERT (alternated)")
    saves, writes, raws = [], [], []
    for _ in range(args.rounds):
        with fresh_database(args.url) as url:
            saves.append(inprocess_save_rate(url, args.seconds / 2))
        with fresh_database(args.url) as url:
            writes.append(writer_rate(url, args.seconds / 2))
        with fresh_database(args.url) as url:
            raws.append(raw_insert_rate(url, args.seconds / 2))
    save, write, raw = statistics.median(saves), statistics.median(writes), statistics.median(raws)
    step("HTTP appends through a proxy to 1 replica and to 2 replicas (alternated)")
    http = http_append_rates(args.url, args.seconds, args.connections, args.rounds)
    one, two = http["one"], http["two"]
    step(f"projection lag and webhook latency at {LAG_RATE:.0f} appends/s; failover")
    flow = lag_and_webhooks(args.url, args.seconds * 2)
    step(f"rebuild at {args.rebuild_events:,} events")
    rebuild = rebuild_rates(args.url, args.rebuild_events)

    p99_lag = percentile(flow["busy_lag"], 99)
    rows = [
        Row(f"HTTP appends/s, 1 replica ({args.connections} conns)", one, "ev/s", "in-process eventsourcing save",
            save, ">= 0.5x", one >= 0.5 * save),
        Row(f"HTTP appends/s, 1 replica ({args.connections} conns)", one, "ev/s", "in-process Writer (+ hash chain)",
            write),
        Row(f"HTTP appends/s, 1 replica ({args.connections} conns)", one, "ev/s", "raw INSERT + COMMIT per row", raw),
        Row(f"HTTP appends/s, 2 replicas ({args.connections} conns)", two, "ev/s", "1 replica, same run", one,
            ">= 0.9x", two >= 0.9 * one),
        Row(f"projection lag p50 at {LAG_RATE:.0f} appends/s", percentile(flow["busy_lag"], 50), "s",
            "idle p50 (10 appends/s)", percentile(flow["idle_lag"], 50)),
        Row(f"projection lag p99 at {LAG_RATE:.0f} appends/s", p99_lag, "s", "idle p99 (10 appends/s)",
            percentile(flow["idle_lag"], 99), "<= 1 s", p99_lag <= 1.0),
        Row(f"webhook latency p50 at {LAG_RATE:.0f} appends/s", percentile(flow["busy_hook"], 50), "s",
            "idle p50 (10 appends/s)", percentile(flow["idle_hook"], 50)),
        Row(f"webhook latency p99 at {LAG_RATE:.0f} appends/s", percentile(flow["busy_hook"], 99), "s",
            "idle p99 (10 appends/s)", percentile(flow["idle_hook"], 99)),
        Row(f"projection fold from nothing, {rebuild['fold']['events']:,} events", rebuild["fold"]["rate"], "ev/s",
            "raw read-and-decode, same store", rebuild["raw"]["rate"]),
        Row(f"rebuild with proof, {rebuild['rebuild']['events']:,} events", rebuild["rebuild"]["rate"], "ev/s",
            "raw read-and-decode, same store", rebuild["raw"]["rate"]),
    ]
    for kind, seconds in flow["failover"].items():
        rows.append(Row(f"standby {kind} worker takes over after SIGKILL", seconds, "s", target="<= 5 s",
                        met=seconds <= 5.0))
    print_table(f"pactwatch benchmark suite on PostgreSQL ({os.cpu_count()} cores)", rows)
    print(f"\nload at {LAG_RATE:.0f}/s achieved {flow['busy_rate']:.0f} accepted/s; statuses {flow['busy_statuses']}; "
          f"webhooks not arrived: {flow['missing_hooks']}")
    print(f"rates per round (ev/s): in-process save {_nums(saves)}; Writer {_nums(writes)}; raw INSERT {_nums(raws)}; "
          f"HTTP 1 replica {_nums(http['rates'][1])}; 2 replicas {_nums(http['rates'][2])}; "
          f"HTTP statuses {http['statuses']}")
    print(f"rebuild {rebuild['rebuild']['seconds']:.1f} s, fold {rebuild['fold']['seconds']:.1f} s, "
          f"raw read {rebuild['raw']['seconds']:.1f} s; "
          f"failover {', '.join(f'{k} {v:.2f} s' for k, v in flow['failover'].items())}")


if __name__ == "__main__":
    main()
