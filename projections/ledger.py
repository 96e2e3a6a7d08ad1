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

from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from projections import envelope as env_mod
from projections.schema import audit_chain


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
