"""Webhook subscriptions and their delivery attempts, over SQLAlchemy Core.

A subscription's `position` is its cursor in the global log: the event store
is the outbox, nothing is copied. Changes made by the dispatcher are
compare-and-set on (position, attempts, active), so that an admin's replay,
resume or pause made meanwhile always wins over an in-flight delivery.
"""
from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from eventsourcing_sqlalchemy.datastore import SQLAlchemyDatastore
from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection, Row

from app.webhooks.signing import new_secret
from projections.reader import head_position
from projections.schema import webhook_deliveries, webhooks

ROTATION_OVERLAP = timedelta(hours=24)
DELIVERIES_KEPT = 10_000
PRUNE_EVERY = 500


def stamp(moment: datetime) -> str:
    """UTC `YYYY-MM-DDTHH:MM:SS.ffffffZ`: sortable as text."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def now() -> datetime:
    return datetime.now(timezone.utc)


def parse_stamp(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass(frozen=True)
class Subscription:
    """One subscription row as the dispatcher needs it."""

    id: str
    url: str
    event_types: tuple[str, ...]
    agreement_id: str | None
    active: bool
    position: int
    attempts: int
    next_attempt_at: str | None
    signing_secrets: tuple[str, ...]

    def matches(self, envelope: dict[str, Any]) -> bool:
        return self.agreement_id in (None, envelope["agreement_id"])


@dataclass(frozen=True)
class Attempt:
    """The outcome of one delivery attempt, as logged."""

    position: int | None
    event_id: str
    attempt: int
    status_code: int | None
    error: str | None
    duration_ms: int
    at: str
    next_retry_at: str | None = None


def public(row: Row[Any] | Any) -> dict[str, Any]:
    """A subscription as the API shows it: never its secret."""
    return {"id": row.id, "url": row.url, "event_types": _types(row.event_types), "agreement_id": row.agreement_id,
            "description": row.description, "active": bool(row.active), "disabled_reason": row.disabled_reason,
            "position": row.position, "created_at": row.created_at}


def attempt_item(row: Row[Any] | Any) -> dict[str, Any]:
    return {"id": row.id, "position": row.position, "event_id": row.event_id, "attempt": row.attempt,
            "status_code": row.status_code, "error": row.error, "duration_ms": row.duration_ms, "at": row.at,
            "next_retry_at": row.next_retry_at}


def _types(text: str | None) -> list[str] | None:
    return json.loads(text) if text is not None else None


def _subscription(row: Row[Any], moment: datetime) -> Subscription:
    secrets = [row.secret]
    if row.previous_secret and row.previous_secret_until and parse_stamp(row.previous_secret_until) > moment:
        secrets.append(row.previous_secret)
    return Subscription(id=row.id, url=row.url, event_types=tuple(_types(row.event_types) or ()),
                        agreement_id=row.agreement_id, active=bool(row.active), position=row.position,
                        attempts=row.attempts, next_attempt_at=row.next_attempt_at, signing_secrets=tuple(secrets))


class Subscriptions:
    """Create, change and read subscriptions; move their cursors; log attempts."""

    def __init__(self, datastore: SQLAlchemyDatastore) -> None:
        self.datastore = datastore
        self.engine = datastore.engine
        self._inserts: dict[str, int] = {}
        self._lock = threading.Lock()

    # The admin's side.

    def create(self, url: str, event_types: list[str] | None, agreement_id: str | None,
               description: str | None) -> dict[str, Any]:
        """A new active subscription starting after the log's head; the answer holds its secret, once."""
        sid, secret, moment = str(uuid.uuid4()), new_secret(), stamp(now())
        with self.datastore.transaction(commit=True) as session:
            conn = session.connection()
            conn.execute(insert(webhooks).values(
                id=sid, url=url, event_types=_dump_types(event_types), agreement_id=agreement_id,
                description=description, active=True, disabled_reason=None, secret=secret, previous_secret=None,
                previous_secret_until=None, position=head_position(conn), attempts=0, next_attempt_at=None,
                created_at=moment, updated_at=moment))
            answer = public(self._row(conn, sid))
        answer["secret"] = secret
        return answer

    def list(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(webhooks).order_by(webhooks.c.created_at, webhooks.c.id)).all()
        return [public(r) for r in rows]

    def get(self, sid: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = self._row(conn, sid)
        return public(row) if row is not None else None

    def change(self, sid: str, changes: dict[str, Any]) -> dict[str, Any] | None:
        """Apply a PATCH; resuming or retargeting starts a fresh schedule at the first undelivered event."""
        with self.datastore.transaction(commit=True) as session:
            conn = session.connection()
            row = self._row(conn, sid)
            if row is None:
                return None
            values: dict[str, Any] = {}
            if "event_types" in changes:
                values["event_types"] = _dump_types(changes["event_types"])
            for name in ("agreement_id", "description"):
                if name in changes:
                    values[name] = changes[name]
            if "url" in changes and changes["url"] != row.url:
                values.update(url=changes["url"], attempts=0, next_attempt_at=None)
            if changes.get("active") is True and not row.active:
                values.update(active=True, disabled_reason=None, attempts=0, next_attempt_at=None)
            elif changes.get("active") is False and row.active:
                values.update(active=False, disabled_reason=None, next_attempt_at=None)
            if values:
                conn.execute(update(webhooks).where(webhooks.c.id == sid).values(updated_at=stamp(now()), **values))
            return public(self._row(conn, sid))

    def delete(self, sid: str) -> bool:
        with self.datastore.transaction(commit=True) as session:
            conn = session.connection()
            done = conn.execute(delete(webhooks).where(webhooks.c.id == sid)).rowcount
            conn.execute(delete(webhook_deliveries).where(webhook_deliveries.c.webhook_id == sid))
        return bool(done)

    def rotate_secret(self, sid: str) -> str | None:
        """A new secret; the current one keeps signing too for 24 hours."""
        secret, moment = new_secret(), now()
        with self.datastore.transaction(commit=True) as session:
            conn = session.connection()
            row = self._row(conn, sid)
            if row is None:
                return None
            conn.execute(update(webhooks).where(webhooks.c.id == sid).values(
                secret=secret, previous_secret=row.secret, previous_secret_until=stamp(moment + ROTATION_OVERLAP),
                updated_at=stamp(moment)))
        return secret

    def replay(self, sid: str, from_position: int) -> dict[str, Any] | None:
        """Move the cursor back to min(cursor, from_position - 1), with a fresh schedule when it moves."""
        target = max(0, from_position - 1)
        with self.datastore.transaction(commit=True) as session:
            conn = session.connection()
            row = self._row(conn, sid)
            if row is None:
                return None
            if target < row.position:
                conn.execute(update(webhooks).where(webhooks.c.id == sid).values(
                    position=target, attempts=0, next_attempt_at=None, updated_at=stamp(now())))
            return public(self._row(conn, sid))

    def deliveries(self, sid: str, limit: int, before: int | None) -> list[dict[str, Any]]:
        """Attempts newest first; `before` pages to smaller ids."""
        d = webhook_deliveries.c
        q = select(webhook_deliveries).where(d.webhook_id == sid)
        if before is not None:
            q = q.where(d.id < before)
        with self.engine.connect() as conn:
            rows = conn.execute(q.order_by(d.id.desc()).limit(limit)).all()
        return [attempt_item(r) for r in rows]

    def load(self, sid: str) -> Subscription | None:
        """The subscription as the dispatcher sees it, with the secrets that sign now."""
        with self.engine.connect() as conn:
            row = self._row(conn, sid)
        return _subscription(row, now()) if row is not None else None

    def log_ping(self, sid: str, attempt: Attempt) -> dict[str, Any]:
        with self.datastore.transaction(commit=True) as session:
            attempt_id = session.connection().execute(insert(webhook_deliveries).values(
                webhook_id=sid, **_attempt_values(attempt))).inserted_primary_key[0]
        return {"id": int(attempt_id), **_attempt_values(attempt)}

    # The dispatcher's side.

    def active(self, conn: Connection) -> list[Subscription]:
        moment = now()
        rows = conn.execute(select(webhooks).where(webhooks.c.active.is_(True)).order_by(webhooks.c.id)).all()
        return [_subscription(r, moment) for r in rows]

    def advance(self, sub: Subscription, position: int, attempts: list[Attempt]) -> bool:
        """Move the cursor to `position` after these deliveries (or past unmatched events); False if changed meanwhile."""
        with self.datastore.transaction(commit=True) as session:
            conn = session.connection()
            self._log(conn, sub.id, *attempts)
            done = conn.execute(self._unchanged(sub).values(position=position, attempts=0, next_attempt_at=None))
        return done.rowcount == 1

    def failed(self, sub: Subscription, attempt: Attempt, disabled_reason: str | None) -> bool:
        """Count a failed attempt: schedule the retry, or disable the subscription with its reason."""
        values: dict[str, Any] = {"attempts": sub.attempts + 1, "next_attempt_at": attempt.next_retry_at}
        if disabled_reason is not None:
            values.update(active=False, disabled_reason=disabled_reason, next_attempt_at=None,
                          updated_at=attempt.at)
        with self.datastore.transaction(commit=True) as session:
            conn = session.connection()
            self._log(conn, sub.id, attempt)
            done = conn.execute(self._unchanged(sub).values(**values))
        return done.rowcount == 1

    # Helpers.

    def _unchanged(self, sub: Subscription) -> Any:
        w = webhooks.c
        return update(webhooks).where(w.id == sub.id, w.position == sub.position, w.attempts == sub.attempts,
                                      w.active.is_(True))

    def _row(self, conn: Connection, sid: str) -> Row[Any] | None:
        return conn.execute(select(webhooks).where(webhooks.c.id == sid)).first()

    def _log(self, conn: Connection, sid: str, *attempts: Attempt) -> None:
        if not attempts:
            return
        conn.execute(insert(webhook_deliveries), [{"webhook_id": sid, **_attempt_values(a)} for a in attempts])
        with self._lock:
            count = self._inserts[sid] = self._inserts.get(sid, 0) + len(attempts)
            if count >= PRUNE_EVERY:
                self._inserts[sid] = 0
        if count >= PRUNE_EVERY:
            self._prune(conn, sid)

    def _prune(self, conn: Connection, sid: str) -> None:
        """Keep the newest DELIVERIES_KEPT attempts of a subscription."""
        d = webhook_deliveries.c
        cut = conn.execute(select(d.id).where(d.webhook_id == sid).order_by(d.id.desc())
                           .offset(DELIVERIES_KEPT).limit(1)).scalar()
        if cut is not None:
            conn.execute(delete(webhook_deliveries).where(d.webhook_id == sid, d.id <= cut))


def _attempt_values(attempt: Attempt) -> dict[str, Any]:
    return {"position": attempt.position, "event_id": attempt.event_id, "attempt": attempt.attempt,
            "status_code": attempt.status_code, "error": attempt.error, "duration_ms": attempt.duration_ms,
            "at": attempt.at, "next_retry_at": attempt.next_retry_at}


def _dump_types(types: list[str] | None) -> str | None:
    return json.dumps(types) if types is not None else None
