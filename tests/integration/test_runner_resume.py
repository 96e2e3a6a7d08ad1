"""The projection runner resumes from its tracked position and applies no event twice."""
from __future__ import annotations

import json
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from app.migrate import upgrade
from app.runtime import Runtime, build
from app.settings import Settings
from projections import reader, replay, store
from projections.replay import Filters
from projections.schema import rm_timeline
from projections.store import ReadModels
from tests import builders as b

AGREEMENTS = ("north", "south", "east")


@pytest.fixture
def runtime(database_url: str) -> Iterator[Runtime]:
    """A migrated store holding three agreements' histories, with no worker running."""
    upgrade(database_url)
    rt = build(Settings(database_url=database_url))
    try:
        for aid in AGREEMENTS:
            record_history(rt, aid)
        yield rt
    finally:
        rt.close()


def write(rt: Runtime, aid: str, kind: str, body: dict[str, Any], **path_ids: str) -> dict[str, Any]:
    raw = json.dumps(body).encode()
    if kind == "agreement":
        return rt.writer.conclude(raw, "tester")
    return rt.writer.record(aid, kind, raw, "tester", **path_ids)


def record_history(rt: Runtime, aid: str) -> None:
    """Fifteen events per agreement, with every kind and two retractions."""
    write(rt, aid, "agreement", b.agreement(aid))
    write(rt, aid, "commitment", b.commitment("c1", value=50))
    write(rt, aid, "commitment", b.commitment("c2", "BB", "AA", "at_least", 5, reciprocal_of="c1"))
    wrong = write(rt, aid, "stage", b.stage("s1", transfers=[b.transfer("c1", count=40)]))
    write(rt, aid, "stage", b.stage("s2", transfers=[b.transfer("c1", count=20),
                                                     b.transfer("c2", "BB", "AA", count=None, basis="undisclosed")]))
    write(rt, aid, "correction", b.correction(wrong["id"]))
    write(rt, aid, "claim", b.claim("k1", commitment_id="c1", count=640))
    write(rt, aid, "accusation", b.accusation("a1", commitment_id="c1"))
    write(rt, aid, "response", b.response(), accusation_id="a1")
    resolved = write(rt, aid, "resolution", b.resolution(), accusation_id="a1")
    write(rt, aid, "correction", b.correction(resolved["id"]))
    write(rt, aid, "accusation", b.accusation("a2", accuser="AA", accused="BB", commitment_id="c2"))
    write(rt, aid, "fulfilment", b.declaration("AA"), commitment_id="c2")
    write(rt, aid, "stage", b.stage("s3", completed_on="2025-03-01", transfers=[b.transfer("c1", count=30)]))
    write(rt, aid, "claim", b.claim("k2", party="BB"))


def all_positions(rt: Runtime) -> list[int]:
    with rt.engine.connect() as conn:
        return [e["position"] for e in reader.iter_log(conn)]


def assert_applied_exactly_once(rt: Runtime, read_models: ReadModels) -> None:
    """Every event has one timeline row, and each compliance state equals a fresh replay."""
    positions = all_positions(rt)
    with rt.engine.connect() as conn:
        gen = store.active_generation(conn)
        rows = conn.execute(select(rm_timeline.c.position).where(rm_timeline.c.generation == gen)
                            .order_by(rm_timeline.c.position)).scalars().all()
        assert rows == positions
        for aid in AGREEMENTS:
            history = reader.agreement_events(conn, aid)
            fresh = json.loads(json.dumps(replay.fold(history, aid, Filters())))
            assert store.stored_state(conn, gen, aid) == fresh
            live = read_models.timeline(conn, aid, None, None, None)
            assert live == replay.timeline_items(history, Filters())
    assert read_models.position(gen) == positions[-1]


def test_the_history_has_events_to_project(runtime: Runtime) -> None:
    assert len(all_positions(runtime)) == 15 * len(AGREEMENTS)


def test_a_runner_advanced_a_few_events_at_a_time_applies_each_once(runtime: Runtime) -> None:
    positions = all_positions(runtime)
    applied = 0
    while True:
        n = runtime.read_models.run_once(limit=7)
        if n == 0:
            break
        applied += n
        assert runtime.read_models.position(1) == positions[applied - 1]
    assert applied == len(positions)
    assert_applied_exactly_once(runtime, runtime.read_models)
    assert runtime.read_models.catch_up() == 0


def test_a_new_runner_on_the_same_database_resumes_where_the_last_one_stopped(runtime: Runtime,
                                                                             database_url: str) -> None:
    positions = all_positions(runtime)
    assert runtime.read_models.run_once(limit=10) == 10
    assert runtime.read_models.run_once(limit=10) == 10
    successor = build(Settings(database_url=database_url))
    try:
        assert successor.read_models.position(1) == positions[19]
        assert successor.read_models.catch_up(batch=8) == len(positions) - 20
        assert_applied_exactly_once(successor, successor.read_models)
        assert runtime.read_models.catch_up() == 0
    finally:
        successor.close()


def test_new_events_after_a_restart_are_applied_once(runtime: Runtime, database_url: str) -> None:
    runtime.read_models.catch_up()
    write(runtime, "north", "claim", b.claim("k3"))
    write(runtime, "west", "agreement", b.agreement("west"))
    successor = build(Settings(database_url=database_url))
    try:
        assert successor.read_models.catch_up() == 2
        with successor.engine.connect() as conn:
            assert successor.read_models.compliance_state(conn, "west")["version"] == 1
            assert successor.read_models.compliance_state(conn, "north")["version"] == 16
    finally:
        successor.close()


class Crash(Exception):
    """Injected failure in the middle of a batch."""


@pytest.mark.parametrize("where", ["fold", "save", "tracking"])
def test_a_batch_that_fails_midway_leaves_nothing_and_is_applied_once_on_resume(
        runtime: Runtime, monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    positions = all_positions(runtime)
    read_models = runtime.read_models
    assert read_models.run_once(limit=12) == 12
    calls = {"n": 0}

    def crash_after(limit: int, original: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls["n"] += 1
            if calls["n"] > limit:
                raise Crash(where)
            return original(*args, **kwargs)
        return wrapper

    if where == "fold":
        monkeypatch.setattr(store.compliance, "apply", crash_after(9, store.compliance.apply))
    elif where == "save":
        monkeypatch.setattr(store, "save_state", crash_after(2, store.save_state))
    else:
        monkeypatch.setattr(read_models.tracking, "_insert_tracking",
                            crash_after(0, read_models.tracking._insert_tracking))
    with pytest.raises(Crash):
        read_models.run_once(limit=20)
    monkeypatch.undo()
    assert read_models.position(1) == positions[11]
    with runtime.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(rm_timeline)).scalar() == 12
    assert read_models.catch_up(batch=20) == len(positions) - 12
    assert_applied_exactly_once(runtime, read_models)


def test_a_fresh_instance_after_a_failed_batch_also_applies_each_event_once(
        runtime: Runtime, monkeypatch: pytest.MonkeyPatch, database_url: str) -> None:
    read_models = runtime.read_models
    read_models.run_once(limit=5)
    original = store.save_state

    def failing(*args: Any, **kwargs: Any) -> None:
        original(*args, **kwargs)
        raise Crash("after the first state was written")

    monkeypatch.setattr(store, "save_state", failing)
    with pytest.raises(Crash):
        read_models.run_once(limit=30)
    monkeypatch.undo()
    other = build(Settings(database_url=database_url))
    try:
        successor = ReadModels(other.app.factory.datastore)
        successor.catch_up(batch=4)
        assert_applied_exactly_once(runtime, successor)
    finally:
        other.close()


def test_comparing_two_generations_holds_a_bounded_number_of_agreement_states(database_url: str) -> None:
    """The rebuild's proof streams both generations: memory must not grow with the number of agreements."""
    from sqlalchemy import create_engine, insert, update

    from projections.rebuild import generations_identical
    from projections.schema import rm_compliance

    upgrade(database_url)
    agreements, state_bytes = 200, 100_000
    rows = [{"generation": gen, "agreement_id": f"a{n:04d}", "created_position": n, "version": 1,
             "view": json.dumps({"pad": f"{n:04d}" + "x" * state_bytes}), "undo": "{}"}
            for gen in (1, 2) for n in range(agreements)]
    engine = create_engine(database_url)
    try:
        with engine.begin() as conn:
            for start in range(0, len(rows), 50):
                conn.execute(insert(rm_compliance), rows[start:start + 50])
        del rows
        with engine.connect() as conn:
            tracemalloc.start()
            try:
                assert generations_identical(conn, 1, 2)
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
        assert peak < 0.25 * agreements * state_bytes * 2, f"{peak / 1e6:.0f} MB held while comparing"
        with engine.begin() as conn:
            conn.execute(update(rm_compliance).where(rm_compliance.c.generation == 2,
                                                     rm_compliance.c.agreement_id == "a0150").values(undo="[]"))
        with engine.connect() as conn:
            assert not generations_identical(conn, 1, 2)
    finally:
        engine.dispose()
