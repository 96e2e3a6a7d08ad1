"""Bulk reads of the event store as envelopes, over SQLAlchemy Core rows."""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import bindparam, func, select, text
from sqlalchemy.engine import Connection

from domain.values import agreement_uuid
from projections import envelope as env_mod
from projections.schema import EVENTS_TABLE, audit_chain, events

TOPIC_PREFIX = "domain.agreement:Agreement."

_columns = (events.c.id, events.c.originator_version, events.c.topic, events.c.state,
            audit_chain.c.prev_hash, audit_chain.c.hash)
_joined = events.outerjoin(audit_chain, audit_chain.c.position == events.c.id)


def topic_of(event_type: str) -> str:
    return TOPIC_PREFIX + event_type


def _envelopes(rows: Any) -> list[dict[str, Any]]:
    return [env_mod.build(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]


# Plain SQL for the bulk path: untyped rows skip SQLAlchemy's per-row processing.
_PAGE = (f"SELECT e.id, e.originator_version, e.topic, e.state, c.prev_hash, c.hash FROM {EVENTS_TABLE} e "
         "LEFT JOIN audit_chain c ON c.position = e.id WHERE e.id > :after {topics}ORDER BY e.id LIMIT :n")
_LOG_PAGE = text(_PAGE.format(topics=""))
_LOG_PAGE_TOPICS = text(_PAGE.format(topics="AND e.topic IN :topics ")).bindparams(
    bindparam("topics", expanding=True))


def log_page(conn: Connection, after: int, limit: int, types: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Envelopes with position > after, ascending."""
    if types:
        rows = conn.execute(_LOG_PAGE_TOPICS, {"after": after, "n": limit, "topics": [topic_of(t) for t in types]})
    else:
        rows = conn.execute(_LOG_PAGE, {"after": after, "n": limit})
    return _envelopes(rows)


def iter_log(conn: Connection, after: int = 0, batch: int = 5000) -> Iterator[dict[str, Any]]:
    """Every envelope after a position, in log order, in bounded batches."""
    while True:
        page = log_page(conn, after, batch)
        yield from page
        if len(page) < batch:
            return
        after = page[-1]["position"]


def agreement_events(conn: Connection, agreement_id: str, max_version: int | None = None) -> list[dict[str, Any]]:
    """One agreement's envelopes by version."""
    q = select(*_columns).select_from(_joined).where(events.c.originator_id == agreement_uuid(agreement_id))
    if max_version is not None:
        q = q.where(events.c.originator_version <= max_version)
    return _envelopes(conn.execute(q.order_by(events.c.originator_version)))


def agreement_version(conn: Connection, agreement_id: str) -> int:
    """The current version of an agreement in the store (0 when unknown)."""
    q = select(func.max(events.c.originator_version)).where(
        events.c.originator_id == agreement_uuid(agreement_id))
    return conn.execute(q).scalar() or 0


def head_position(conn: Connection) -> int:
    return conn.execute(select(func.max(events.c.id))).scalar() or 0
