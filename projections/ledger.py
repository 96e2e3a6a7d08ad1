"""The hash chain over the global log.

Where it is computed: in the transaction that records the event, right after
the insert. On PostgreSQL the eventsourcing recorder has by then taken
`LOCK TABLE pactwatch_events IN EXCLUSIVE MODE`, held until commit, so every
earlier event is committed (with its chain row) and no later one can be
inserted before this transaction ends: the head read here is the event's
true predecessor in the log, and chain order equals position order. On
SQLite the recorder's write lock serialises writers in the same way. A
follower computing hashes after the fact would instead have to be the only
writer of the chain and would make every 201 wait for it.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import insert, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from projections import envelope as env_mod
from projections.schema import EVENTS_TABLE, audit_chain, events


def lock_log(session: Session) -> None:
    """Take the log's write lock now, for the whole write transaction.

    eventsourcing takes the same `LOCK TABLE ... IN EXCLUSIVE MODE` at its insert;
    taking it first makes the aggregate load, the timestamp and the chain all see
    the log as it is when this event lands (readers are not blocked). On SQLite the
    recorder's semaphore serialises this process only, and reads run outside any
    transaction until the first write: a no-op UPDATE takes the database's write
    lock now, so another process cannot chain from the same head.
    """
    if session.connection().dialect.name == "postgresql":
        session.execute(text(f"LOCK TABLE {EVENTS_TABLE} IN EXCLUSIVE MODE"))
    else:
        session.execute(text("UPDATE audit_chain SET hash = hash WHERE position = -1"))


def next_recorded_at(session: Session) -> datetime:
    """Now (UTC), but never earlier than the newest event's recorded_at plus a microsecond.

    Replicas' clocks differ: without this, a later event could carry an earlier time
    and a `known_at` filter could keep version 3 of an agreement without version 2.
    """
    now = datetime.now(timezone.utc)
    state = session.execute(select(events.c.state).order_by(events.c.id.desc()).limit(1)).scalar()
    if state is None:
        return now
    stamp = json.loads(bytes(state))["timestamp"]
    last = datetime.fromisoformat(stamp["_data_"] if isinstance(stamp, dict) else stamp)
    return max(now, last + timedelta(microseconds=1))


def head(session: Session) -> tuple[int, str]:
    row = session.execute(
        select(audit_chain.c.position, audit_chain.c.hash).order_by(audit_chain.c.position.desc()).limit(1)
    ).first()
    return (row[0], row[1]) if row else (0, env_mod.ZERO_HASH)


def append(session: Session, recordings: list[Any]) -> list[dict[str, Any]]:
    """Chain freshly inserted events (eventsourcing Recordings); returns their envelopes."""
    _, prev = head(session)
    envelopes = []
    for rec in recordings:
        n = rec.notification
        envelope = env_mod.build(n.id, n.originator_version, n.topic, n.state, prev_hash=prev)
        envelope["hash"] = env_mod.compute_hash(envelope)
        session.execute(insert(audit_chain).values(position=n.id, prev_hash=prev, hash=envelope["hash"]))
        prev = envelope["hash"]
        envelopes.append(envelope)
    return envelopes


# Plain SQL: untyped rows skip SQLAlchemy's per-row processing, a third of the cost.
_VERIFY_PAGE = text(
    f"SELECT e.id, e.originator_version, e.topic, e.state, c.prev_hash, c.hash FROM {EVENTS_TABLE} e "
    "LEFT JOIN audit_chain c ON c.position = e.id WHERE e.id > :after ORDER BY e.id LIMIT :n")


def verify(conn: Connection, batch: int = 5000) -> dict[str, Any]:
    """Recompute every hash from the stored events, in log order, in bounded batches.

    `first_bad_position` is the smallest position whose stored event no longer
    hashes to its chain row, whose chain row is missing, or whose `prev_hash`
    is not its predecessor's hash.
    """
    checked = 0
    prev = env_mod.ZERO_HASH
    head_position, head_hash = 0, env_mod.ZERO_HASH
    first_bad: int | None = None
    after = 0
    while True:
        rows = conn.execute(_VERIFY_PAGE, {"after": after, "n": batch}).all()
        for position, version, topic, state, prev_hash, stored_hash in rows:
            checked += 1
            if first_bad is None and not _sound(position, version, topic, state, prev_hash, stored_hash, prev):
                first_bad = position
            prev = stored_hash or env_mod.ZERO_HASH
            head_position, head_hash = position, stored_hash or env_mod.ZERO_HASH
        if len(rows) < batch:
            break
        after = rows[-1][0]
    orphans = conn.execute(select(audit_chain.c.position).select_from(
        audit_chain.outerjoin(events, events.c.id == audit_chain.c.position)).where(events.c.id.is_(None))
        .order_by(audit_chain.c.position).limit(1)).scalar()
    if orphans is not None and (first_bad is None or orphans < first_bad):
        first_bad = orphans
    return {"ok": first_bad is None, "events_checked": checked,
            "head": {"position": head_position, "hash": head_hash}, "first_bad_position": first_bad}


def _sound(position: int, version: int, topic: str, state: Any, prev_hash: str | None, stored_hash: str | None,
           expected_prev: str) -> bool:
    if stored_hash is None or prev_hash != expected_prev:
        return False
    try:
        envelope = env_mod.build(position, version, topic, bytes(state), prev_hash=prev_hash)
        return env_mod.compute_hash(envelope) == stored_hash
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeError):
        return False


def current_head(conn: Connection) -> dict[str, Any]:
    """`{position, hash}` of the newest event; zeros for an empty store."""
    row = conn.execute(select(audit_chain.c.position, audit_chain.c.hash)
                       .order_by(audit_chain.c.position.desc()).limit(1)).first()
    return {"position": row[0], "hash": row[1]} if row else {"position": 0, "hash": env_mod.ZERO_HASH}
