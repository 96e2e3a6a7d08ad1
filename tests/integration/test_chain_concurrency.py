"""The hash chain and recorded_at follow the log's order with concurrent writers on several engines."""
from __future__ import annotations

import json
import threading

import pytest

from app.migrate import upgrade
from app.runtime import build
from app.settings import Settings
from sqlalchemy import select, update

from projections import ledger, reader
from projections.schema import events
from tests import builders as b


def test_chain_verifies_after_concurrent_writers_on_two_engines(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("concurrent writers across engines are a PostgreSQL scenario")
    upgrade(database_url)
    runtimes = [build(Settings(database_url=database_url)) for _ in range(2)]
    try:
        runtimes[0].writer.conclude(json.dumps(b.agreement("shared")).encode(), "t")
        runtimes[0].writer.record("shared", "commitment", json.dumps(b.commitment("c1")).encode(), "t")
        errors: list[BaseException] = []

        def write(runtime_index: int, thread: int) -> None:
            runtime = runtimes[runtime_index]
            own = f"own-{runtime_index}-{thread}"
            try:
                runtime.writer.conclude(json.dumps(b.agreement(own)).encode(), "t")
                for i in range(10):
                    runtime.writer.record(own, "claim", json.dumps(b.claim(f"k{i}")).encode(), "t")
                    runtime.writer.record("shared", "claim",
                                          json.dumps(b.claim(f"k-{runtime_index}-{thread}-{i}")).encode(), "t")
            except BaseException as exc:  # collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(r, t)) for r in range(2) for t in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        with runtimes[0].engine.connect() as conn:
            result = ledger.verify(conn)
        expected = 2 + 6 * (1 + 10 + 10)
        assert result["ok"] is True, result
        assert result["events_checked"] == expected
        assert runtimes[1].app.get_agreement("shared").version == 2 + 60
    finally:
        for runtime in runtimes:
            runtime.close()


def test_recorded_at_follows_the_log_order_with_concurrent_writers(database_url: str) -> None:
    """Two engines stand for two processes: on SQLite too, nothing forks the chain or the clock."""
    upgrade(database_url)
    runtimes = [build(Settings(database_url=database_url)) for _ in range(2)]
    try:
        def write(runtime_index: int, thread: int) -> None:
            runtime = runtimes[runtime_index]
            own = f"own-{runtime_index}-{thread}"
            runtime.writer.conclude(json.dumps(b.agreement(own)).encode(), "t")
            for i in range(8):
                runtime.writer.record(own, "claim", json.dumps(b.claim(f"k{i}")).encode(), "t")

        threads = [threading.Thread(target=write, args=(r, t)) for r in range(2) for t in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        with runtimes[0].engine.connect() as conn:
            log = reader.log_page(conn, 0, 1000)
        assert len(log) == 6 * 9
        stamps = [e["recorded_at"] for e in log]
        assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
        with runtimes[1].engine.connect() as conn:
            assert ledger.verify(conn)["ok"] is True
    finally:
        for runtime in runtimes:
            runtime.close()


def test_an_event_is_never_recorded_before_the_newest_one(database_url: str) -> None:
    """A clock behind the newest event's time (another replica's) still records after it."""
    upgrade(database_url)
    runtime = build(Settings(database_url=database_url))
    try:
        runtime.writer.conclude(json.dumps(b.agreement("accord")).encode(), "t")
        with runtime.app.factory.datastore.transaction(commit=True) as session:
            state = json.loads(bytes(session.execute(select(events.c.state)).scalar()))
            state["timestamp"]["_data_"] = "2999-01-01T00:00:00.000000+00:00"
            session.execute(update(events).values(state=json.dumps(state).encode()))
            session.commit()
        later = runtime.writer.record("accord", "claim", json.dumps(b.claim("k1")).encode(), "t")
        assert later["recorded_at"] == "2999-01-01T00:00:00.000001Z"
    finally:
        runtime.close()
