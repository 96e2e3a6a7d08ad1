"""Carry the record away and back: export the log as JSON Lines, import it hash for hash."""
from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import IO, Any

from eventsourcing.utils import get_topic
from sqlalchemy import func, insert, select, text, update

from domain.agreement import Agreement
from domain.application import Pactwatch
from domain.values import EVENT_TYPES, agreement_uuid
from projections import envelope as env_mod
from projections.reader import iter_log
from projections.schema import audit_chain, events, webhooks

ENVELOPE_KEYS = ("position", "id", "agreement_id", "type", "version", "recorded_at", "occurred_on",
                 "recorded_by", "source", "data", "prev_hash", "hash")
INSERT_CHUNK = 1000


class ImportRefused(Exception):
    """The file cannot be imported; nothing was written."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}" if line else reason)
        self.line = line
        self.reason = reason


def export_log(conn: Any, out: IO[str]) -> int:
    """Write every envelope, one JSON object per line, in log order; returns the count."""
    count = 0
    for envelope in iter_log(conn):
        out.write(json.dumps(envelope, ensure_ascii=False, separators=(",", ":")))
        out.write("\n")
        count += 1
    return count


def _lines(source: IO[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, line in enumerate(source, start=1):
        if not line.endswith("\n"):
            raise ImportRefused(number, "the file is truncated (its last line is incomplete)")
        if not line.strip():
            raise ImportRefused(number, "empty line")
        try:
            envelope = json.loads(line)
        except ValueError as exc:
            raise ImportRefused(number, f"malformed JSON: {exc}") from None
        if not isinstance(envelope, dict) or tuple(envelope) != ENVELOPE_KEYS:
            raise ImportRefused(number, f"not an envelope with the keys {', '.join(ENVELOPE_KEYS)} in order")
        yield number, envelope


def check_file(source: IO[str]) -> int:
    """Check the whole chain of an export before anything is written; returns the count."""
    prev, last_position, count = env_mod.ZERO_HASH, 0, 0
    versions: dict[str, int] = {}
    for number, env in _lines(source):
        position, version = env["position"], env["version"]
        if not isinstance(position, int) or isinstance(position, bool) or position <= last_position:
            raise ImportRefused(number, "positions must be integers in ascending order")
        if env["type"] not in EVENT_TYPES:
            raise ImportRefused(number, f"unknown event type {env['type']!r}")
        if not isinstance(env["agreement_id"], str) or version != versions.get(env["agreement_id"], 0) + 1:
            raise ImportRefused(number, "agreement versions must follow one another from 1")
        if (version == 1) != (env["type"] == "AgreementConcluded"):
            raise ImportRefused(number, "an agreement starts with AgreementConcluded, and only there")
        if env["prev_hash"] != prev:
            raise ImportRefused(number, "prev_hash is not the previous event's hash: the chain is broken")
        if env_mod.compute_hash(env) != env["hash"]:
            raise ImportRefused(number, "hash does not match the envelope: the chain is broken")
        prev, last_position = env["hash"], position
        versions[env["agreement_id"]] = version
        count += 1
    return count


def _stored(app: Pactwatch, env: dict[str, Any]) -> dict[str, Any]:
    event_class = getattr(Agreement, env["type"])
    kwargs: dict[str, Any] = {
        "originator_id": agreement_uuid(env["agreement_id"]), "originator_version": env["version"],
        "timestamp": datetime.fromisoformat(env["recorded_at"].replace("Z", "+00:00")),
        "event_id": env["id"], "agreement_id": env["agreement_id"], "recorded_by": env["recorded_by"],
        "occurred_on": env["occurred_on"], "source": env["source"], "data": env["data"],
    }
    if env["type"] == "AgreementConcluded":
        kwargs["originator_topic"] = get_topic(Agreement)
    stored = app.mapper.to_stored_event(event_class(**kwargs))
    return {"id": env["position"], "originator_id": stored.originator_id,
            "originator_version": stored.originator_version, "topic": stored.topic, "state": stored.state}


def import_log(app: Pactwatch, path: str) -> int:
    """Load an export into an empty store in one transaction, every value verbatim."""
    datastore = app.factory.datastore
    with open(path, encoding="utf-8", newline="\n") as source:
        count = check_file(source)
    with datastore.transaction(commit=True) as session:
        conn = session.connection()
        if conn.execute(select(func.count()).select_from(events)).scalar():
            raise ImportRefused(0, "the store is not empty: import needs an empty store")
        rows, chain = [], []
        with open(path, encoding="utf-8", newline="\n") as source:
            for _, env in _lines(source):
                rows.append(_stored(app, env))
                chain.append({"position": env["position"], "prev_hash": env["prev_hash"], "hash": env["hash"]})
                if len(rows) >= INSERT_CHUNK:
                    conn.execute(insert(events), rows)
                    conn.execute(insert(audit_chain), chain)
                    rows, chain = [], []
        if rows:
            conn.execute(insert(events), rows)
            conn.execute(insert(audit_chain), chain)
        # Subscriptions made before the import start after its head: an import sends no webhooks.
        head = conn.execute(select(func.max(events.c.id))).scalar() or 0
        conn.execute(update(webhooks).where(webhooks.c.position < head).values(position=head))
        if conn.dialect.name == "postgresql" and count:
            conn.execute(text("SELECT setval(pg_get_serial_sequence('pactwatch_events', 'id'), "
                              "(SELECT max(id) FROM pactwatch_events))"))
    return count
