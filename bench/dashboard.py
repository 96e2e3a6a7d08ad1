"""Dashboard benchmark: how long each HTML page takes to serve, for the demo and a long agreement.

    python -m bench.dashboard                     # SQLite, a 1,000-event agreement, 30 requests per page
    python -m bench.dashboard --events 5000 --requests 10
    python -m bench.dashboard --url postgresql+psycopg://postgres@127.0.0.1:5432/test

`pactwatch serve --demo` runs as a subprocess on a free local port; a second
agreement is recorded through the HTTP API (reciprocal commitments, stages,
claims, accusations and answers), then each page is fetched one request at a
time over one keep-alive connection. Prints the median and 95th percentile
latency and the size of each page.
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

TOKEN = "bench-admin-token"
SOURCE = {"publisher": "Bench Wire", "url": "https://example.org/bench"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def seed(api: httpx.Client, events: int) -> None:
    """One agreement of about `events` events: 5 reciprocal pairs, then stages, claims, accusations, answers."""
    def post(path: str, body: dict[str, Any]) -> None:
        answer = api.post(path, json={**body, "source": SOURCE})
        answer.raise_for_status()

    post("/v1/agreements", {"id": "bench", "title": "Bench accord", "concluded_on": "2025-01-01", "venue": "Geneva",
                            "parties": [{"code": "AA", "name": "Alpha"}, {"code": "BB", "name": "Beta"}],
                            "mediators": []})
    base = "/v1/agreements/bench"
    pairs = []
    for i in range(5):
        post(f"{base}/commitments", {"commitment_id": f"a{i}", "obligor": "AA", "beneficiary": "BB",
                                     "action": "release_prisoners", "subject": f"group {i}",
                                     "quantity": {"qualifier": "at_least", "value": 100_000}})
        post(f"{base}/commitments", {"commitment_id": f"b{i}", "obligor": "BB", "beneficiary": "AA",
                                     "action": "release_prisoners", "subject": f"group {i}",
                                     "quantity": {"qualifier": "at_least", "value": 100_000},
                                     "reciprocal_of": f"a{i}"})
        pairs.append((f"a{i}", f"b{i}"))
    for n in range(events - 11):
        a, b = pairs[n % len(pairs)]
        day = f"2025-{1 + (n // 28) % 12:02d}-{1 + n % 28:02d}"
        kind = n % 4
        if kind == 0:
            post(f"{base}/stages", {"stage_id": f"s{n}", "completed_on": day, "transfers": [
                {"commitment_id": a, "from": "AA", "to": "BB", "count": 10, "count_basis": "reported"},
                {"commitment_id": b, "from": "BB", "to": "AA", "count": 9, "count_basis": "approximate"}]})
        elif kind == 1:
            post(f"{base}/claims", {"claim_id": f"k{n}", "party": "AA", "commitment_id": a,
                                    "statement": "a list was handed over", "count": 50, "made_on": day})
        elif kind == 2:
            post(f"{base}/accusations", {"accusation_id": f"x{n}", "accuser": "BB", "accused": "AA",
                                         "commitment_id": a, "allegation": "stalling", "made_on": day})
        else:
            post(f"{base}/accusations/x{n - 1}/responses", {"by": "AA", "stance": "denied", "statement": "no",
                                                            "made_on": day})


def measure(client: httpx.Client, path: str, requests: int) -> tuple[float, float, int]:
    """(median ms, p95 ms, bytes) of `requests` sequential GETs after a warm-up."""
    for _ in range(3):
        client.get(path).raise_for_status()
    times = []
    size = 0
    for _ in range(requests):
        start = time.perf_counter()
        answer = client.get(path)
        times.append((time.perf_counter() - start) * 1000)
        answer.raise_for_status()
        size = len(answer.content)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.95))], size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a PostgreSQL URL to bench on (a fresh database is made and dropped)")
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args()
    pactwatch = str(Path(sys.executable).parent / "pactwatch")
    with tempfile.TemporaryDirectory() as tmp:
        database, dropped = f"sqlite:///{tmp}/bench.db", None
        if args.url:
            dropped = f"pw_bench_{os.getpid()}"
            admin = create_engine(args.url, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{dropped}"'))
            database = make_url(args.url).set(database=dropped).render_as_string(hide_password=False)
        port = free_port()
        env = {**os.environ, "PACTWATCH_DATABASE_URL": database, "PACTWATCH_ADMIN_TOKEN": TOKEN}
        server = subprocess.Popen([pactwatch, "serve", "--demo", "--host", "127.0.0.1", "--port", str(port)],
                                  env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        sys.exit("pactwatch serve did not start")
                    time.sleep(0.2)
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as api:
                seed(api, args.events)
            with httpx.Client(base_url=base, timeout=60) as client:
                print(f"{'page':<45} {'median ms':>10} {'p95 ms':>8} {'KiB':>7}")
                for path in ("/", "/agreements/istanbul-2025", "/agreements/istanbul-2025?as_of=2025-06-08",
                             "/agreements/bench", "/agreements/bench?as_of=2025-06-15"):
                    median, p95, size = measure(client, path, args.requests)
                    print(f"{path:<45} {median:>10.1f} {p95:>8.1f} {size / 1024:>7.0f}")
        finally:
            server.terminate()
            server.wait(timeout=30)
            if dropped:
                admin = create_engine(args.url, isolation_level="AUTOCOMMIT")
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{dropped}" WITH (FORCE)'))
                admin.dispose()


if __name__ == "__main__":
    main()
