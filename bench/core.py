"""Core benchmark: HTTP appends next to in-process saves, compliance latency on a large agreement,
and a full projection rebuild next to the raw read of the log, with its peak memory.

    python -m bench.core                                   # SQLite and PostgreSQL, a few minutes each
    python -m bench.core --stores sqlite --seconds 3 --rebuild-events 50000,200000
    python -m bench.core --parts rebuild --rebuild-events 250000,1000000

Every figure is printed next to a baseline measured in the same run on the
same store, with their ratio and the issue's target:

- appends: `pactwatch serve --no-workers` in a subprocess, httpx clients (1
  and 8 concurrent writers, each on its own agreement) posting commitments;
  baseline: the Pactwatch application's `record()` of the same event in a loop
  (no HTTP, no hash chain) on the same database, in this process. The same
  runs with bench/load.py's lean client show the httpx client's share.
- compliance: one agreement of `--compliance-events` events, seeded through
  the export/import path (library mapper, Core bulk inserts, hash chain), the
  read model caught up, then GET /v1/agreements/{id}/compliance over HTTP:
  the first (uncached) call, then p50/p99 of repeated calls; a time-travel
  call (`as_of`, a replay of the whole stream) is shown for scale.
- rebuild: a fresh store of N events (agreements of 500 events); `fold` is the
  projection runner filling generation 1 from nothing (a full rebuild of every
  read model), `rebuild` the proof-carrying rebuild of projections/rebuild.py
  (fold into generation 2, compare row by row, switch); baseline: SELECT state
  and json.loads over the whole events table. Each runs in its own process;
  memory is its peak RSS above the RSS it started with, at each N.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx

from bench.cluster import create_database, drop_database, free_port

ROOT = Path(__file__).resolve().parent.parent
ADMIN_TOKEN = "bench-core-admin"
DEFAULT_SERVER = os.environ.get("PACTWATCH_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
SOURCE = {"publisher": "Bench Wire"}


def agreement_body(agreement_id: str) -> dict[str, Any]:
    return {"id": agreement_id, "title": "Bench accord", "concluded_on": "2025-01-10", "venue": "Geneva",
            "parties": [{"code": "AA", "name": "Alpha"}, {"code": "BB", "name": "Beta"}], "mediators": [],
            "source": SOURCE}


def commitment_body(commitment_id: str) -> dict[str, Any]:
    return {"commitment_id": commitment_id, "obligor": "AA", "beneficiary": "BB", "action": "release_prisoners",
            "subject": "detainees", "quantity": {"qualifier": "exact", "value": 100}, "source": SOURCE}


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of a process (this one by default) so far."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], p: float) -> float:
    """The nearest-rank percentile."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


# Stores.

@contextmanager
def fresh_store(kind: str, server_url: str = DEFAULT_SERVER) -> Iterator[str]:
    """The URL of an empty, migrated database: a temporary SQLite file or a new PostgreSQL database."""
    from app.migrate import upgrade

    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="pw-bench-") as workdir:
            url = f"sqlite:///{workdir}/bench.db"
            upgrade(url)
            yield url
        return
    url = create_database(server_url, prefix="pw_bench_core")
    try:
        upgrade(url)
        yield url
    finally:
        drop_database(url)


def seed(url: str, events: int, per_agreement: int) -> float:
    """Fill an empty store with a synthetic log through the export/import path; returns the seconds taken."""
    from app.audit import import_log
    from app.runtime import build
    from app.settings import Settings
    from bench.audit import synthesize

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pw-seed-") as workdir:
        export = os.path.join(workdir, "log.jsonl")
        synthesize(export, events, per_agreement=per_agreement)
        runtime = build(Settings(database_url=url))
        try:
            assert import_log(runtime.app, export) == events
        finally:
            runtime.close()
    return time.perf_counter() - started


# (a) Appends.

def inprocess_save_rate(url: str, seconds: float, agreement_id: str) -> tuple[float, float]:
    """Events/s of `Pactwatch.record()` saving one commitment per call on this store (bodies pre-validated),
    and the CPU milliseconds each save cost this process."""
    from app.runtime import build
    from app.settings import Settings
    from domain.agreement import event_meta

    runtime = build(Settings(database_url=url))
    try:
        app = runtime.app

        def body(value: dict[str, Any]) -> Any:
            data = {k: v for k, v in value.items() if k != "source"}
            return lambda: (data, value["source"])

        def meta() -> dict[str, Any]:
            return event_meta(str(uuid.uuid4()), "bench", datetime.now(timezone.utc))

        app.conclude_agreement(body(agreement_body(agreement_id)), meta())
        n = 0
        started, cpu_started = time.perf_counter(), cpu_seconds()
        while time.perf_counter() - started < seconds:
            app.record(agreement_id, "commitment", body(commitment_body(f"c{n}")), meta())
            n += 1
        return n / (time.perf_counter() - started), (cpu_seconds() - cpu_started) / n * 1000
    finally:
        runtime.close()


class Server:
    """`pactwatch serve --no-workers` on a free port of 127.0.0.1, as its own process."""

    def __init__(self, url: str, workers: bool = False) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        script = Path(sys.executable).parent / "pactwatch"
        command = [str(script), "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        if not workers:
            command.append("--no-workers")
        env = {**os.environ, "PACTWATCH_DATABASE_URL": url, "PACTWATCH_ADMIN_TOKEN": ADMIN_TOKEN}
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def __enter__(self) -> Server:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pactwatch serve exited: {self.output()}")
            try:
                if httpx.get(f"{self.base}/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"pactwatch serve did not become ready: {self.output()}")

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-2000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def http_append_rate(base: str, clients: int, seconds: float, prefix: str,
                     warmup: float = 1.0) -> tuple[float, dict[int, int]]:
    """Accepted appends/s of `clients` concurrent httpx writers, each posting commitments to its own agreement;
    returns (rate of 201s, statuses of the requests answered in the measured window)."""

    async def run() -> tuple[float, dict[int, int]]:
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=60) as client:
            for w in range(clients):
                answer = await client.post("/v1/agreements", json=agreement_body(f"{prefix}-{w}"))
                assert answer.status_code == 201, answer.text
            statuses: Counter[int] = Counter()
            start = time.perf_counter() + warmup
            stop = start + seconds

            async def writer(w: int) -> None:
                n = 0
                while time.perf_counter() < stop:
                    answer = await client.post(f"/v1/agreements/{prefix}-{w}/commitments",
                                               json=commitment_body(f"c{n}"))
                    n += 1
                    if start <= time.perf_counter() <= stop:
                        statuses[answer.status_code] += 1

            await asyncio.gather(*(writer(w) for w in range(clients)))
            return statuses[201] / seconds, dict(statuses)

    return asyncio.run(run())


def lean_append_rate(base: str, clients: int, seconds: float, prefix: str) -> tuple[float, dict[int, int]]:
    """The same appends with bench/load.py's lean client (tens of microseconds of CPU per request), to show
    how much of the httpx figure is the client's share of the two cores."""
    from bench import load

    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with httpx.Client(base_url=base, headers=headers) as client:
        for w in range(clients):
            assert client.post("/v1/agreements", json=agreement_body(f"{prefix}-{w}")).status_code == 201

    def next_request(w: int, n: int) -> Any:
        return "POST", f"/v1/agreements/{prefix}-{w}/commitments", commitment_body(f"c{n}")

    run = asyncio.run(load.closed_loop(base, headers, clients, seconds, next_request))
    return run.rate(201), run.statuses()


@dataclass
class AppendFigures:
    store: str
    inprocess: list[float]
    http: dict[int, list[float]]
    statuses: dict[int, Counter[int]]
    inprocess_cpu_ms: list[float]
    server_cpu_ms: dict[int, list[float]]
    client_cpu_ms: dict[int, list[float]]
    lean: dict[int, list[float]]


def measure_appends(kind: str, seconds: float, clients: list[int], rounds: int,
                    server_url: str = DEFAULT_SERVER, lean: bool = True) -> AppendFigures:
    """In-process saves and HTTP appends on one store, alternated `rounds` times."""
    figures = AppendFigures(kind, [], {c: [] for c in clients}, {c: Counter() for c in clients}, [],
                            {c: [] for c in clients}, {c: [] for c in clients}, {c: [] for c in clients})
    with fresh_store(kind, server_url) as url:
        for r in range(rounds):
            rate, cpu_ms = inprocess_save_rate(url, seconds, f"inproc-{r}")
            figures.inprocess.append(rate)
            figures.inprocess_cpu_ms.append(cpu_ms)
            with Server(url) as server:
                for c in clients:
                    server_cpu, client_cpu = cpu_seconds(server.proc.pid), cpu_seconds()
                    rate, statuses = http_append_rate(server.base, c, seconds, f"http-{r}-{c}")
                    answered = max(1, sum(statuses.values()))
                    figures.server_cpu_ms[c].append((cpu_seconds(server.proc.pid) - server_cpu) / answered * 1000)
                    figures.client_cpu_ms[c].append((cpu_seconds() - client_cpu) / answered * 1000)
                    figures.http[c].append(rate)
                    figures.statuses[c].update(statuses)
                    if lean:
                        rate, statuses = lean_append_rate(server.base, c, seconds, f"lean-{r}-{c}")
                        figures.lean[c].append(rate)
                        figures.statuses[c].update(statuses)
    return figures


# (b) Compliance latency.

@dataclass
class ComplianceFigures:
    store: str
    events: int
    seed_seconds: float
    catch_up_seconds: float
    first_ms: float
    latencies_ms: list[float]
    answer_bytes: int
    time_travel_ms: list[float]


def measure_compliance(kind: str, events: int, requests: int, server_url: str = DEFAULT_SERVER,
                       time_travel: int = 3) -> ComplianceFigures:
    """GET compliance of one agreement of `events` events, its read model caught up, over HTTP."""
    from app.runtime import build
    from app.settings import Settings

    with fresh_store(kind, server_url) as url:
        seeded = seed(url, events, per_agreement=events)
        runtime = build(Settings(database_url=url))
        try:
            started = time.perf_counter()
            assert runtime.read_models.catch_up() == events
            caught_up = time.perf_counter() - started
        finally:
            runtime.close()
        path = "/v1/agreements/bench-0/compliance"
        with Server(url) as server, httpx.Client(base_url=server.base, timeout=120) as client:
            assert client.get("/v1/agreements/bench-0/events", params={"limit": 1}).status_code == 200
            started = time.perf_counter()
            first = client.get(path)
            first_ms = (time.perf_counter() - started) * 1000
            assert first.status_code == 200 and first.json()["version"] == events, first.text[:300]
            latencies = []
            for _ in range(requests):
                started = time.perf_counter()
                answer = client.get(path)
                latencies.append((time.perf_counter() - started) * 1000)
                assert answer.status_code == 200
            travels = []
            for _ in range(time_travel):
                started = time.perf_counter()
                assert client.get(path, params={"as_of": "2099-12-31"}).status_code == 200
                travels.append((time.perf_counter() - started) * 1000)
    return ComplianceFigures(kind, events, seeded, caught_up, first_ms, latencies, len(first.content), travels)


# (c) Rebuild.

def _status_kb(field: str) -> int:
    """A field of /proc/self/status in kB: VmRSS (now) or VmHWM (the peak of this process image).

    Not ru_maxrss: after fork and exec it also counts the peak of the parent it was forked from.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _phase(name: str, url: str) -> dict[str, Any]:
    """Run one phase in this process and return its figures (called as `--phase`)."""
    from app.runtime import build
    from app.settings import Settings
    from bench.audit import raw_read_and_decode
    from projections.rebuild import rebuild

    runtime = build(Settings(database_url=url))
    rss_before = _status_kb("VmRSS")
    started, cpu_started = time.perf_counter(), cpu_seconds()
    try:
        if name == "raw":
            with runtime.engine.connect() as conn:
                count = raw_read_and_decode(conn)
        elif name == "fold":
            count = runtime.read_models.catch_up()
        elif name == "rebuild":
            result = rebuild(runtime.read_models)
            assert result["identical"], result
            count = result["events_replayed"]
        else:
            raise SystemExit(f"unknown phase {name}")
        seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu_started
    finally:
        runtime.close()
    peak = _status_kb("VmHWM")
    return {"phase": name, "events": count, "seconds": seconds, "rate": count / seconds, "cpu_seconds": cpu,
            "rss_start_mb": rss_before / 1024, "peak_rss_mb": peak / 1024,
            "peak_above_start_mb": (peak - rss_before) / 1024}


def run_phase(name: str, url: str) -> dict[str, Any]:
    """One phase in a fresh interpreter, so that its peak memory is its own."""
    done = subprocess.run([sys.executable, "-m", "bench.core", "--phase", name, "--url", url], cwd=ROOT,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"phase {name} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure_rebuild(kind: str, events: int, server_url: str = DEFAULT_SERVER) -> dict[str, Any]:
    """raw read, fold and rebuild on a fresh store of `events` events."""
    with fresh_store(kind, server_url) as url:
        seeded = seed(url, events, per_agreement=500)
        phases = {name: run_phase(name, url) for name in ("raw", "fold", "rebuild")}
    return {"store": kind, "events": events, "seed_seconds": seeded, **phases}


# Output.

@dataclass
class Row:
    figure: str
    value: float
    unit: str
    baseline: str = ""
    baseline_value: float | None = None
    target: str = ""
    met: bool | None = None


def _num(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def print_table(title: str, rows: list[Row]) -> None:
    print(f"\n{title}\n")
    print(f"| {'figure':<50} | {'value':>15} | {'baseline':<40} | {'baseline value':>15} | {'ratio':>6} "
          f"| {'target':<22} | met |")
    print(f"|{'-' * 52}|{'-' * 17}|{'-' * 42}|{'-' * 17}|{'-' * 8}|{'-' * 24}|-----|")
    for r in rows:
        ratio = f"{r.value / r.baseline_value:.2f}" if r.baseline_value else ""
        base = f"{_num(r.baseline_value)} {r.unit}" if r.baseline_value is not None else ""
        met = "" if r.met is None else ("yes" if r.met else "NO")
        print(f"| {r.figure:<50} | {_num(r.value) + ' ' + r.unit:>15} | {r.baseline:<40} | {base:>15} "
              f"| {ratio:>6} | {r.target:<22} | {met:<3} |")


def append_rows(f: AppendFigures) -> list[Row]:
    save = statistics.median(f.inprocess)
    rows = []
    for clients, rates in f.http.items():
        rate = statistics.median(rates)
        rows.append(Row(f"{f.store}: HTTP appends, {clients} client{'s' if clients > 1 else ''}", rate, "ev/s",
                        "in-process record(), same store", save, ">= 0.5x baseline", rate >= 0.5 * save))
        if f.lean[clients]:
            lean = statistics.median(f.lean[clients])
            rows.append(Row(f"{f.store}: same, lean client instead of httpx", lean, "ev/s",
                            "in-process record(), same store", save))
    return rows


def compliance_rows(f: ComplianceFigures, target_ms: float = 20.0) -> list[Row]:
    p50, p99 = percentile(f.latencies_ms, 50), percentile(f.latencies_ms, 99)
    travel = statistics.median(f.time_travel_ms) if f.time_travel_ms else None
    rows = [
        Row(f"{f.store}: compliance p50, {f.events:,} events", p50, "ms"),
        Row(f"{f.store}: compliance p99, {f.events:,} events", p99, "ms", target=f"<= {target_ms:.0f} ms",
            met=p99 <= target_ms),
        Row(f"{f.store}: compliance, first (uncached) call", f.first_ms, "ms"),
    ]
    if travel is not None:
        rows.append(Row(f"{f.store}: compliance as_of (replays the stream)", travel, "ms"))
    return rows


def rebuild_rows(results: list[dict[str, Any]], target: float = 20_000) -> list[Row]:
    rows = []
    for r in results:
        n, raw = r["events"], r["raw"]["rate"]
        rows.append(Row(f"{r['store']}: fold into a fresh generation, {n:,} ev", r["fold"]["rate"], "ev/s",
                        "raw read + json.loads, same store", raw, ">= 20,000 ev/s", r["fold"]["rate"] >= target))
        rows.append(Row(f"{r['store']}: rebuild with proof, {n:,} ev", r["rebuild"]["rate"], "ev/s",
                        "raw read + json.loads, same store", raw, ">= 20,000 ev/s", r["rebuild"]["rate"] >= target))
    by_store: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        by_store.setdefault(r["store"], []).append(r)
    for store, runs in by_store.items():
        runs.sort(key=lambda r: r["events"])
        smallest = runs[0]
        for r in runs:
            for phase in ("fold", "rebuild"):
                grown = r[phase]["peak_above_start_mb"] - smallest[phase]["peak_above_start_mb"]
                flat = r is smallest or grown <= 0.25 * smallest[phase]["peak_above_start_mb"] + 16
                rows.append(Row(f"{store}: {phase} peak RSS above start, {r['events']:,} ev",
                                r[phase]["peak_above_start_mb"], "MB",
                                f"same at {smallest['events']:,} ev" if r is not smallest else "",
                                smallest[phase]["peak_above_start_mb"] if r is not smallest else None,
                                "flat in events" if r is not smallest else "", None if r is smallest else flat))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stores", default="sqlite,postgres", help="comma-separated: sqlite, postgres")
    parser.add_argument("--parts", default="appends,compliance,rebuild", help="comma-separated parts to run")
    parser.add_argument("--url", default=DEFAULT_SERVER, help="PostgreSQL server URL (fresh databases beside it)")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each append run")
    parser.add_argument("--clients", default="1,8", help="concurrent HTTP writers per run")
    parser.add_argument("--no-lean", action="store_true", help="skip the runs with bench/load.py's lean client")
    parser.add_argument("--rounds", type=int, default=2, help="alternated repetitions of the append runs (medians)")
    parser.add_argument("--compliance-events", type=int, default=100_000)
    parser.add_argument("--compliance-requests", type=int, default=300)
    parser.add_argument("--rebuild-events", default="100000,400000", help="comma-separated store sizes")
    parser.add_argument("--phase", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(_phase(args.phase, args.url)))
        return
    stores = [s for s in args.stores.split(",") if s]
    parts = set(args.parts.split(","))

    def step(what: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {what}", file=sys.stderr, flush=True)

    rows: list[Row] = []
    notes: list[str] = []
    for store in stores:
        if "appends" in parts:
            step(f"{store}: appends ({args.rounds} rounds of {args.seconds:g} s)")
            appends = measure_appends(store, args.seconds, [int(c) for c in args.clients.split(",")], args.rounds,
                                      args.url, lean=not args.no_lean)
            rows += append_rows(appends)
            notes.append(f"{store} appends per round (ev/s): in-process {[round(v) for v in appends.inprocess]}; "
                         + "; ".join(f"{c} clients {[round(v) for v in r]} (lean {[round(v) for v in appends.lean[c]]})"
                                     f" statuses {dict(appends.statuses[c])}" for c, r in appends.http.items()))
            notes.append(f"{store} CPU ms per append: in-process record() "
                         f"{statistics.median(appends.inprocess_cpu_ms):.2f}; "
                         + "; ".join(f"{c} clients: server {statistics.median(appends.server_cpu_ms[c]):.2f}, "
                                     f"httpx client {statistics.median(appends.client_cpu_ms[c]):.2f}"
                                     for c in appends.http))
        if "compliance" in parts:
            step(f"{store}: compliance at {args.compliance_events:,} events")
            figures = measure_compliance(store, args.compliance_events, args.compliance_requests, args.url)
            rows += compliance_rows(figures)
            notes.append(f"{store} compliance: seeded in {figures.seed_seconds:.1f} s, read model caught up in "
                         f"{figures.catch_up_seconds:.1f} s, answer {figures.answer_bytes:,} bytes, "
                         f"mean {statistics.mean(figures.latencies_ms):.2f} ms over {len(figures.latencies_ms)} calls")
        if "rebuild" in parts:
            results = []
            for events in [int(n) for n in args.rebuild_events.split(",") if n]:
                step(f"{store}: rebuild at {events:,} events")
                result = measure_rebuild(store, events, args.url)
                results.append(result)
                notes.append(f"{store} {events:,} events: seeded in {result['seed_seconds']:.0f} s; " + "; ".join(
                    f"{p} {result[p]['seconds']:.1f} s ({result[p]['events'] / result[p]['cpu_seconds']:,.0f} ev "
                    f"per CPU-second of its process), peak RSS {result[p]['peak_rss_mb']:.0f} MB "
                    f"(started at {result[p]['rss_start_mb']:.0f})" for p in ("raw", "fold", "rebuild")))
            rows += rebuild_rows(results)
    print_table(f"pactwatch core benchmark ({os.cpu_count()} cores, load average "
                f"{os.getloadavg()[0]:.1f} at the end)", rows)
    print()
    for note in notes:
        print(note)


if __name__ == "__main__":
    main()
