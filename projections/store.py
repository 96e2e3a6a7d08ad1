"""The SQL read models (compliance, timeline) and the runner that keeps them.

The runner follows the notification log from its tracked position and, per
batch, writes the changed rows and the new tracking position in one
transaction: each event is applied exactly once, across crashes too. Rows
carry a `generation`; a rebuild fills the next generation from history and
flips `rm_meta.generation` in one transaction (see projections/rebuild.py).
"""
from __future__ import annotations

import json
import threading
import zlib
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from eventsourcing.persistence import Tracking
from eventsourcing_sqlalchemy.datastore import SQLAlchemyDatastore
from eventsourcing_sqlalchemy.recorders import SQLAlchemyTrackingRecorder
from sqlalchemy import insert, select, text, update
from sqlalchemy.engine import Connection

from projections import compliance, envelope, timeline
from projections.reader import log_page
from projections.schema import TRACKING_TABLE, audit_chain, events, rm_compliance, rm_meta, rm_timeline


BATCH_LOCK = zlib.crc32(b"pactwatch:read-model-batch") & 0x7FFFFFFF


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def tracking_name(generation: int) -> str:
    return f"read-models:{generation}"


def active_generation(conn: Connection) -> int:
    value = conn.execute(select(rm_meta.c.value).where(rm_meta.c.name == "generation")).scalar()
    return int(value) if value is not None else 1


def timeline_row(generation: int, env: dict[str, Any]) -> dict[str, Any]:
    """The timeline's row of an event; its envelope is read from the store when served."""
    return {
        "generation": generation, "position": env["position"], "agreement_id": env["agreement_id"],
        "version": env["version"], "occurred_on": env["occurred_on"], "recorded_at": env["recorded_at"],
        "event_id": env["id"], "event_type": env["type"], "summary": timeline.summary(env),
        "retracted_by_version": None, "retracted_by_recorded_at": None,
    }


def lock_batches(conn: Connection) -> None:
    """Serialise batch transactions across processes (PostgreSQL); SQLite has one writer anyway."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": BATCH_LOCK})


def apply_batch(conn: Connection, gen: int, envelopes: list[dict[str, Any]],
                state_of: Callable[[str], dict[str, Any]]) -> dict[str, int]:
    """Fold envelopes into their agreements' states and write their timeline rows.

    Returns the positions of the AgreementConcluded events met, by agreement.
    """
    created: dict[str, int] = {}
    rows: list[dict[str, Any]] = []
    for env in envelopes:
        aid = env["agreement_id"]
        if env["type"] == "AgreementConcluded":
            created[aid] = env["position"]
        compliance.apply(state_of(aid), env)
        rows.append(timeline_row(gen, env))
        if env["type"] == "RecordCorrected":
            conn.execute(insert(rm_timeline), rows)
            rows = []
            conn.execute(update(rm_timeline).where(
                rm_timeline.c.generation == gen, rm_timeline.c.event_id == env["data"]["event_id"],
            ).values(retracted_by_version=env["version"], retracted_by_recorded_at=env["recorded_at"]))
    if rows:
        conn.execute(insert(rm_timeline), rows)
    return created


def save_state(conn: Connection, gen: int, aid: str, state: dict[str, Any], created_position: int | None) -> None:
    view, undo = compliance.split(state)
    values = {"version": state["version"], "view": dumps(view), "undo": dumps(undo)}
    done = conn.execute(update(rm_compliance).where(
        rm_compliance.c.generation == gen, rm_compliance.c.agreement_id == aid).values(**values))
    if done.rowcount == 0:
        conn.execute(insert(rm_compliance).values(
            generation=gen, agreement_id=aid, created_position=created_position or 0, **values))


def stored_state(conn: Connection, gen: int, aid: str) -> dict[str, Any]:
    """The whole fold state of an agreement in a generation, or a fresh one."""
    row = conn.execute(select(rm_compliance.c.view, rm_compliance.c.undo).where(
        rm_compliance.c.generation == gen, rm_compliance.c.agreement_id == aid)).first()
    return compliance.join(json.loads(row[0]), json.loads(row[1])) if row else compliance.initial(aid)


class ReadModels:
    """Keeps and reads the compliance and timeline read models."""

    def __init__(self, datastore: SQLAlchemyDatastore, cache_size: int = 256) -> None:
        self.datastore = datastore
        self.engine = datastore.engine
        self.tracking = SQLAlchemyTrackingRecorder(datastore, tracking_table_name=TRACKING_TABLE)
        self._cache: OrderedDict[tuple[int, str], dict[str, Any]] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.RLock()
        self.wakeup = threading.Event()

    # Running.

    def position(self, generation: int) -> int:
        return self.tracking.max_tracking_id(tracking_name(generation)) or 0

    def run_once(self, limit: int = 1000, generation: int | None = None) -> int:
        """Apply up to `limit` new events; returns how many were applied."""
        with self._lock:
            try:
                return self._run_batch(limit, generation)
            except BaseException:
                self._cache.clear()
                raise

    def catch_up(self, generation: int | None = None, batch: int = 2000) -> int:
        total = 0
        while True:
            n = self.run_once(batch, generation)
            total += n
            if n < batch:
                return total

    def _run_batch(self, limit: int, generation: int | None, session: Any = None) -> int:
        if session is None:
            with self.datastore.transaction(commit=True) as session:
                return self._run_batch(limit, generation, session)
        conn = session.connection()
        lock_batches(conn)
        gen = generation if generation is not None else active_generation(conn)
        after = self.position(gen)
        envelopes = log_page(conn, after, limit)
        if not envelopes:
            return 0
        states: dict[str, dict[str, Any]] = {}

        def state_of(aid: str) -> dict[str, Any]:
            if aid not in states:
                states[aid] = self._load_state(conn, gen, aid)
            return states[aid]

        created = apply_batch(conn, gen, envelopes, state_of)
        for aid, state in states.items():
            save_state(conn, gen, aid, state, created.get(aid))
        self.tracking._insert_tracking(session, Tracking(tracking_name(gen), envelopes[-1]["position"]))
        for aid, state in states.items():
            self._remember(gen, aid, state)
        return len(envelopes)

    def _load_state(self, conn: Connection, gen: int, aid: str) -> dict[str, Any]:
        version = conn.execute(select(rm_compliance.c.version).where(
            rm_compliance.c.generation == gen, rm_compliance.c.agreement_id == aid)).scalar()
        cached = self._cache.get((gen, aid))
        if cached is not None and version is not None and cached["version"] == version:
            return cached
        if version is None:
            return compliance.initial(aid)
        return stored_state(conn, gen, aid)

    def _remember(self, gen: int, aid: str, state: dict[str, Any]) -> None:
        self._cache[(gen, aid)] = state
        self._cache.move_to_end((gen, aid))
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    # Reading.

    def compliance_state(self, conn: Connection, agreement_id: str) -> dict[str, Any] | None:
        """The part of the state that answers need (not what only retractions need)."""
        gen = active_generation(conn)
        text = conn.execute(select(rm_compliance.c.view).where(
            rm_compliance.c.generation == gen, rm_compliance.c.agreement_id == agreement_id)).scalar()
        return json.loads(text) if text is not None else None

    def compliance_version(self, conn: Connection, agreement_id: str) -> int:
        gen = active_generation(conn)
        return conn.execute(select(rm_compliance.c.version).where(
            rm_compliance.c.generation == gen, rm_compliance.c.agreement_id == agreement_id)).scalar() or 0

    def timeline(self, conn: Connection, agreement_id: str, as_of: str | None, known_at: str | None,
                 version: int | None) -> list[dict[str, Any]]:
        """Timeline items as API.md defines them, served from the read model."""
        gen = active_generation(conn)
        t, e, h = rm_timeline.c, events.c, audit_chain.c
        q = select(e.id, e.originator_version, e.topic, e.state, h.prev_hash, h.hash, t.summary,
                   t.retracted_by_version, t.retracted_by_recorded_at).select_from(
            rm_timeline.join(events, e.id == t.position).outerjoin(audit_chain, h.position == t.position)).where(
            t.generation == gen, t.agreement_id == agreement_id)
        if known_at is not None:
            q = q.where(t.recorded_at <= known_at)
        if version is not None:
            q = q.where(t.version <= version)
        if as_of is not None:
            q = q.where((t.occurred_on <= as_of) | (t.event_type == "RecordCorrected"))
        items = []
        for position, v, topic, state, prev_hash, hash_, summary, by_version, by_recorded_at in conn.execute(
                q.order_by(t.occurred_on, t.position)):
            retracted = by_version is not None and (version is None or by_version <= version) and (
                known_at is None or by_recorded_at <= known_at)
            item = envelope.build(position, v, topic, state, prev_hash, hash_)
            item["summary"] = summary
            item["retracted"] = retracted
            items.append(item)
        return items
