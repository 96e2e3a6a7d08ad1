"""Webhook delivery: record-to-receipt latency (p50/p99) and deliveries/s, with 1 and with 10 subscriptions.

    python -m bench.webhooks                    # SQLite in a temporary directory
    python -m bench.webhooks --postgres URL     # also on a fresh PostgreSQL database beside URL

The dispatcher runs in this process exactly as `pactwatch serve` runs it;
each subscription has its own receiver process on 127.0.0.1 that notes when
every webhook-id arrives. Latency: from an event's `recorded_at` to its
arrival, one event every `--interval` seconds. Throughput: a backlog of
events recorded while the worker is stopped, then delivered at full speed.
Targets: p50 <= 50 ms, p99 <= 250 ms, >= 500 deliveries/s.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from app.migrate import upgrade
from app.runtime import Runtime, build
from app.settings import Settings
from bench.cluster import create_database, drop_database
from bench.suite import Receiver

SOURCE = {"publisher": "Bench Wire"}


def agreement(agreement_id: str) -> bytes:
    return json.dumps({"id": agreement_id, "title": "Bench accord", "concluded_on": "2025-01-10", "venue": "Geneva",
                       "parties": [{"code": "AA", "name": "Alpha"}, {"code": "BB", "name": "Beta"}],
                       "mediators": [], "source": SOURCE}).encode()


def commitment(commitment_id: str) -> bytes:
    return json.dumps({"commitment_id": commitment_id, "obligor": "AA", "beneficiary": "BB",
                       "action": "release_prisoners", "subject": "detainees",
                       "quantity": {"qualifier": "exact", "value": 10}, "source": SOURCE}).encode()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


@contextmanager
def runtime_for(database_url: str) -> Iterator[Runtime]:
    settings = Settings(database_url=database_url, webhook_allow_private=True)
    upgrade(database_url)
    runtime = build(settings)
    try:
        yield runtime
    finally:
        runtime.close()


def receivers_in(workdir: Path, name: str, count: int) -> list[Receiver]:
    """One receiver process per subscription, each noting arrivals in its own folder."""
    folders = [Path(tempfile.mkdtemp(prefix=f"{name}-", dir=workdir)) for _ in range(count)]
    return [Receiver(folder) for folder in folders]


def wait_for(receivers: list[Receiver], ids: list[str], timeout: float) -> list[dict[str, float]]:
    deadline = time.monotonic() + timeout
    while True:
        seen = [r.arrivals() for r in receivers]
        if all(all(i in s for i in ids) for s in seen) or time.monotonic() > deadline:
            return seen
        time.sleep(0.05)


def latency(database_url: str, subscriptions: int, events: int, interval: float, workdir: Path) -> list[float]:
    """Seconds from recorded_at to arrival, for every (subscription, event)."""
    receivers = receivers_in(workdir, f"latency-{subscriptions}", subscriptions)
    try:
        with runtime_for(database_url) as runtime:
            for r in receivers:
                runtime.webhooks.subscriptions.create(r.url, None, None, None)
            runtime.start_workers()
            agreement_id = f"lat-{subscriptions}"
            envelopes = [runtime.writer.conclude(agreement(agreement_id), "bench")]
            for n in range(1, events):
                time.sleep(interval)
                envelopes.append(runtime.writer.record(agreement_id, "commitment", commitment(f"c{n}"), "bench"))
            seen = wait_for(receivers, [e["id"] for e in envelopes], 60)
        recorded = {e["id"]: datetime.fromisoformat(e["recorded_at"].replace("Z", "+00:00")).timestamp()
                    for e in envelopes}
        return [max(0.0, s[i] - at) for s in seen for i, at in recorded.items() if i in s]
    finally:
        for r in receivers:
            r.stop()


def throughput(database_url: str, subscriptions: int, events: int, workdir: Path) -> tuple[int, float]:
    """(deliveries, seconds) to drain a backlog of `events` to every subscription."""
    receivers = receivers_in(workdir, f"throughput-{subscriptions}", subscriptions)
    try:
        with runtime_for(database_url) as runtime:
            for r in receivers:
                runtime.webhooks.subscriptions.create(r.url, None, None, None)
            agreement_id = f"tp-{subscriptions}"
            ids = [runtime.writer.conclude(agreement(agreement_id), "bench")["id"]]
            ids += [runtime.writer.record(agreement_id, "commitment", commitment(f"c{n}"), "bench")["id"]
                    for n in range(1, events)]
            started = time.time()
            runtime.start_workers()
            seen = wait_for(receivers, ids, 300)
        delivered = sum(len(s) for s in seen)
        last = max(max(s.values()) for s in seen if s)
        return delivered, last - started
    finally:
        for r in receivers:
            r.stop()


def run(label: str, database_url_for: callable, args: argparse.Namespace, workdir: Path) -> None:
    for subscriptions in (1, 10):
        with database_url_for() as url:
            lat = latency(url, subscriptions, args.events, args.interval, workdir)
        with database_url_for() as url:
            delivered, seconds = throughput(url, subscriptions, args.backlog // subscriptions, workdir)
        print(f"{label:10} {subscriptions:3} subscription(s): latency p50 {percentile(lat, 50) * 1000:7.1f} ms, "
              f"p99 {percentile(lat, 99) * 1000:7.1f} ms ({len(lat)} deliveries, one event every "
              f"{args.interval * 1000:.0f} ms); throughput {delivered / seconds:7.0f} deliveries/s "
              f"({delivered} in {seconds:.2f} s)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300, help="events recorded for the latency run")
    parser.add_argument("--interval", type=float, default=0.02, help="seconds between events in the latency run")
    parser.add_argument("--backlog", type=int, default=5000, help="deliveries in the throughput run")
    parser.add_argument("--postgres", help="a PostgreSQL server URL: also run on a fresh database beside it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        counter = iter(range(1000))

        @contextmanager
        def sqlite_url() -> Iterator[str]:
            yield f"sqlite:///{workdir}/bench-{next(counter)}.db"

        @contextmanager
        def postgres_url() -> Iterator[str]:
            url = create_database(args.postgres, "pw_bench_webhooks")
            try:
                yield url
            finally:
                drop_database(url)

        run("sqlite", sqlite_url, args, workdir)
        if args.postgres:
            run("postgresql", postgres_url, args, workdir)


if __name__ == "__main__":
    main()
