"""Rebuild every read model from history into a fresh generation, prove it, switch.

1. Fold the whole log into generation N+1 (not served yet) in bounded chunks,
   keeping at most `cache_size` agreement states in memory (written back when
   evicted), so memory does not grow with the number of events.
2. In one transaction that holds the batch lock (no live batch can run):
   bring both generations to the log's head, compare them row by row, and
   make N+1 the served generation. Reads keep using N until that commit.
3. Drop generations older than N afterwards.
"""
from __future__ import annotations

from collections import OrderedDict
from itertools import zip_longest
from typing import Any

from eventsourcing.persistence import Tracking
from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection

from projections.reader import log_page
from projections.schema import rm_compliance, rm_meta, rm_timeline
from projections.store import (
    ReadModels,
    active_generation,
    apply_batch,
    lock_batches,
    save_state,
    stored_state,
    tracking_name,
)


def rebuild(read_models: ReadModels, chunk: int = 5000, cache_size: int = 512) -> dict[str, Any]:
    """Rebuild, compare, switch; returns `{events_replayed, identical}`."""
    datastore = read_models.datastore
    with datastore.transaction(commit=True) as session:
        conn = session.connection()
        old = active_generation(conn)
        new = old + 1
        for table in (rm_compliance, rm_timeline):
            conn.execute(delete(table).where(table.c.generation != old))
    replayed = _fold_history(read_models, new, chunk, cache_size)
    with datastore.transaction(commit=True) as session:
        conn = session.connection()
        lock_batches(conn)
        for gen in (old, new):
            while True:
                n = read_models._run_batch(chunk, gen, session)
                if gen == new:
                    replayed += n
                if n < chunk:
                    break
        identical = generations_identical(conn, old, new)
        _set_generation(conn, new)
    with datastore.transaction(commit=True) as session:
        conn = session.connection()
        for table in (rm_compliance, rm_timeline):
            conn.execute(delete(table).where(table.c.generation < old))
    return {"events_replayed": replayed, "identical": identical}


def _fold_history(read_models: ReadModels, gen: int, chunk: int, cache_size: int) -> int:
    """Fold the log into `gen` up to the current head; tracking is written at the end."""
    datastore = read_models.datastore
    states: OrderedDict[str, dict[str, Any]] = OrderedDict()
    created: dict[str, int] = {}
    after = 0
    replayed = 0
    while True:
        with datastore.transaction(commit=True) as session:
            conn = session.connection()
            envelopes = log_page(conn, after, chunk)
            if not envelopes:
                break

            def state_of(aid: str) -> dict[str, Any]:
                state = states.get(aid)
                if state is None:
                    state = states[aid] = stored_state(conn, gen, aid)
                states.move_to_end(aid)
                return state

            created.update(apply_batch(conn, gen, envelopes, state_of))
            while len(states) > cache_size:
                aid, state = states.popitem(last=False)
                save_state(conn, gen, aid, state, created.get(aid))
            after = envelopes[-1]["position"]
            replayed += len(envelopes)
        if len(envelopes) < chunk:
            break
    with datastore.transaction(commit=True) as session:
        conn = session.connection()
        for aid, state in states.items():
            save_state(conn, gen, aid, state, created.get(aid))
        if after:
            read_models.tracking._insert_tracking(session, Tracking(tracking_name(gen), after))
    return replayed


def _set_generation(conn: Connection, gen: int) -> None:
    done = conn.execute(update(rm_meta).where(rm_meta.c.name == "generation").values(value=gen))
    if done.rowcount == 0:
        conn.execute(insert(rm_meta).values(name="generation", value=gen))


def generations_identical(conn: Connection, a: int, b: int) -> bool:
    """Row-by-row equality of two generations of every read model, streamed."""
    c, t = rm_compliance.c, rm_timeline.c
    # Rows fetched at a time per side: a compliance row holds a whole agreement's
    # state (tens of kB at 500 events), so a large batch of them would grow with
    # the number of agreements; timeline rows are small.
    pairs = [
        (select(c.agreement_id, c.created_position, c.version, c.view, c.undo).order_by(c.agreement_id),
         c.generation, 20),
        (select(t.position, t.agreement_id, t.version, t.occurred_on, t.recorded_at, t.event_id, t.event_type,
                t.summary, t.retracted_by_version, t.retracted_by_recorded_at).order_by(t.position),
         t.generation, 2000),
    ]
    for query, column, rows_at_a_time in pairs:
        streaming = {"stream_results": True, "yield_per": rows_at_a_time}
        left = conn.execute(query.where(column == a), execution_options=streaming)
        right = conn.execute(query.where(column == b), execution_options=streaming)
        try:
            for x, y in zip_longest(left, right):
                if x is None or y is None or tuple(x) != tuple(y):
                    return False
        finally:
            left.close()
            right.close()
    return True
