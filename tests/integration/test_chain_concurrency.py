"""The hash chain follows the log's order with concurrent writers in several processes' worth of engines."""
from __future__ import annotations

import json
import threading

import pytest

from app.migrate import upgrade
from app.runtime import build
from app.settings import Settings
from projections import ledger
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
