"""Audit benchmark: verify, export and rebuild rates next to the raw read-and-decode rate.

    python -m bench.audit                      # 1,000,000 events on SQLite (a few minutes)
    python -m bench.audit --events 250000      # smaller
    python -m bench.audit --url postgresql+psycopg://postgres@127.0.0.1:5432/test --events 250000

A synthetic log (agreements of 500 events: commitments, stages, claims,
accusations, answers) is written as an export file with a valid chain, then
imported; `catchup` is the live projection runner folding the whole log from
scratch, `rebuild` the proof-carrying rebuild beside a caught-up live model
(a fresh generation, then the row-by-row comparison). Every phase runs in its own process so that its peak memory
(ru_maxrss) is its own. Figures are printed as a table, with ratios to the
raw read rate measured in the same run.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from typing import Any

from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from projections import envelope as env_mod
from projections.schema import events

SOURCE = {"publisher": "Bench Wire", "url": None, "channel": None, "published_on": None, "quote": None}


def _events_of(agreement: str, count: int) -> list[tuple[str, dict[str, Any]]]:
    """(type, data) for one agreement of `count` events."""
    out: list[tuple[str, dict[str, Any]]] = [("AgreementConcluded", {
        "id": agreement, "title": f"Bench {agreement}", "concluded_on": "2025-01-01", "venue": "Geneva",
        "parties": [{"code": "AA", "name": "Alpha"}, {"code": "BB", "name": "Beta"}], "mediators": []})]
    commitments = []
    for i in range(10):
        obligor, beneficiary = ("AA", "BB") if i % 2 == 0 else ("BB", "AA")
        cid = f"c{i}"
        commitments.append((cid, obligor, beneficiary))
        out.append(("CommitmentMade", {
            "commitment_id": cid, "obligor": obligor, "beneficiary": beneficiary, "action": "release_prisoners",
            "subject": f"group {i}", "quantity": {"qualifier": "at_least", "value": 100_000}, "due_by": None,
            "made_on": None, "reciprocal_of": None}))
    n = 0
    while len(out) < count:
        n += 1
        cid, obligor, beneficiary = commitments[n % len(commitments)]
        kind = n % 10
        if kind < 6:
            out.append(("StageCompleted", {"stage_id": f"s{n}", "completed_on": "2025-02-01", "description": None,
                                           "transfers": [{"commitment_id": cid, "from": obligor, "to": beneficiary,
                                                          "count": n % 50, "count_basis": "reported"}]}))
        elif kind < 8:
            out.append(("ProgressClaimed", {"claim_id": f"k{n}", "party": obligor, "commitment_id": cid,
                                            "statement": "delivered as agreed", "count": n % 70,
                                            "made_on": "2025-02-02"}))
        elif kind == 8:
            out.append(("AccusationMade", {"accusation_id": f"a{n}", "accuser": beneficiary, "accused": obligor,
                                           "commitment_id": cid, "allegation": "stalling",
                                           "made_on": "2025-02-03"}))
        else:
            out.append(("AccusationAnswered", {"by": obligor, "stance": "denied", "statement": "no",
                                               "made_on": "2025-02-04", "accusation_id": f"a{n - 1}"}))
    return out[:count]


def synthesize(path: str, events: int, per_agreement: int = 500) -> None:
    """Write a valid export of `events` events (hash chain included)."""
    prev = env_mod.ZERO_HASH
    position = 0
    with open(path, "w", encoding="utf-8") as out:
        a = 0
        while position < events:
            agreement = f"bench-{a}"
            a += 1
            for version, (etype, data) in enumerate(_events_of(agreement, min(per_agreement, events - position)), 1):
                position += 1
                occurred = data.get("concluded_on") or data.get("completed_on") or data.get("made_on") or "2025-01-01"
                envelope = {"position": position, "id": f"00000000-0000-4000-8000-{position:012d}",
                            "agreement_id": agreement, "type": etype, "version": version,
                            "recorded_at": f"2025-06-01T00:00:00.{position % 1_000_000:06d}Z",
                            "occurred_on": occurred, "recorded_by": "bench", "source": SOURCE, "data": data,
                            "prev_hash": prev, "hash": None}
                envelope["hash"] = env_mod.compute_hash(envelope)
                prev = envelope["hash"]
                out.write(json.dumps(envelope, ensure_ascii=False, separators=(",", ":")) + "\n")


def raw_read_and_decode(conn: Any) -> int:
    """The baseline: every stored event's bytes read in log order and parsed as JSON, nothing more."""
    count = 0
    rows = conn.execute(select(events.c.state).order_by(events.c.id),
                        execution_options={"stream_results": True, "yield_per": 5000})
    for (state,) in rows:
        json.loads(state)
        count += 1
    return count


def _phase(name: str, url: str, arg: str) -> dict[str, Any]:
    """Run one phase here (in the child process) and return its figures."""
    from app.audit import export_log, import_log
    from app.runtime import build
    from app.settings import Settings
    from projections import ledger
    from projections.rebuild import rebuild

    runtime = build(Settings(database_url=url))
    started = time.perf_counter()
    try:
        if name == "import":
            count = import_log(runtime.app, arg)
        elif name == "raw":
            with runtime.engine.connect() as conn:
                count = raw_read_and_decode(conn)
        elif name == "verify":
            with runtime.engine.connect() as conn:
                result = ledger.verify(conn)
            assert result["ok"], result
            count = result["events_checked"]
        elif name == "export":
            with open(arg, "w", encoding="utf-8") as out, runtime.engine.connect() as conn:
                count = export_log(conn, out)
        elif name == "catchup":
            count = runtime.read_models.catch_up()
        elif name == "rebuild":
            count = rebuild(runtime.read_models)["events_replayed"]
        else:
            raise SystemExit(f"unknown phase {name}")
    finally:
        runtime.close()
    seconds = time.perf_counter() - started
    return {"phase": name, "events": count, "seconds": round(seconds, 2), "rate": round(count / seconds),
            "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def run_phase(name: str, url: str, arg: str = "") -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "bench.audit", "--phase", name, "--url", url, "--arg", arg],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _fresh_database(url: str | None, workdir: str) -> tuple[str, Any]:
    if url is None or url.startswith("sqlite"):
        return f"sqlite:///{workdir}/bench.db", None
    name = f"pw_bench_{os.getpid()}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return make_url(url).set(database=name).render_as_string(hide_password=False), drop


def measure(events: int, url: str | None = None) -> list[dict[str, Any]]:
    """All phases on a fresh store of `events` events; the raw read rate is the baseline."""
    from app.migrate import upgrade

    with tempfile.TemporaryDirectory() as workdir:
        db_url, drop = _fresh_database(url, workdir)
        try:
            upgrade(db_url)
            export_file = os.path.join(workdir, "log.jsonl")
            synthesize(export_file, events)
            rows = [run_phase("import", db_url, export_file)]
            for phase in ("raw", "verify", "export", "catchup", "rebuild"):
                rows.append(run_phase(phase, db_url, os.path.join(workdir, "out.jsonl")))
        finally:
            if drop:
                drop()
    return rows


def print_table(title: str, rows: list[dict[str, Any]]) -> None:
    raw = next(r["rate"] for r in rows if r["phase"] == "raw")
    print(f"\n{title}")
    print(f"{'phase':<10}{'events':>10}{'seconds':>10}{'events/s':>12}{'x raw read':>12}{'peak RSS MB':>13}")
    for r in rows:
        print(f"{r['phase']:<10}{r['events']:>10}{r['seconds']:>10}{r['rate']:>12}{r['rate'] / raw:>12.2f}"
              f"{r['max_rss_mb']:>13}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--url", default=None, help="a PostgreSQL URL (a fresh database is made beside it)")
    parser.add_argument("--phase", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--arg", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(_phase(args.phase, args.url, args.arg)))
        return
    store = "PostgreSQL" if args.url and args.url.startswith("postgresql") else "SQLite"
    print_table(f"audit at {args.events:,} events on {store}", measure(args.events, args.url))


if __name__ == "__main__":
    main()
