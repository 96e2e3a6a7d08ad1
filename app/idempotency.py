"""Idempotency keys: the first 2xx answer to a POST, kept and replayed to its retries.

A key is scoped to (key name, method, path). Its row is claimed as
`in_flight` in a transaction committed before the write, so a concurrent
request with the same key finds the claim (409) instead of writing a second
event; the answer is stored by a hook inside the write's own transaction, so
an event is never recorded without its answer nor an answer kept without its
event. A write that fails gives the claim back. A claim whose process died
(its lease ran out) is taken over; the old writer then finds its claim gone
and its transaction rolls back. The created_at of a claim identifies it.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy.exc
from eventsourcing.persistence import IntegrityError
from eventsourcing_sqlalchemy.datastore import SQLAlchemyDatastore
from fastapi import Request
from fastapi.responses import Response
from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.body import load_json
from app.problems import Problem, validation_problem
from projections.schema import idempotency_keys as table

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
MAX_PATH_LENGTH = 512
RETENTION = timedelta(hours=24)
LEASE = timedelta(seconds=30)
IN_FLIGHT, DONE = "in_flight", "done"
KEPT_HEADERS = ("ETag", "Location")
REPLAYED_HEADER = "Idempotent-Replayed"

Write = Callable[[Callable[[Session, dict[str, Any]], None] | None], dict[str, Any]]
Render = Callable[[dict[str, Any]], Response]


class ClaimLost(Exception):
    """The claim was taken over while the write ran; raised inside the write so that it rolls back.

    Not a Problem: the Writer must treat it as a failure after the aggregate changed.
    """


@dataclass(frozen=True)
class Scope:
    principal: str
    method: str
    path: str
    key: str

    def where(self) -> Any:
        return ((table.c.principal == self.principal) & (table.c.method == self.method)
                & (table.c.path == self.path) & (table.c.idem_key == self.key))


@dataclass(frozen=True)
class Claim:
    scope: Scope
    created_at: str

    def where(self) -> Any:
        return self.scope.where() & (table.c.created_at == self.created_at) & (table.c.state == IN_FLIGHT)


def parse_key(value: str) -> str:
    """The header's key: 1 to 255 characters, none of them a control character, or 422."""
    if not 0 < len(value) <= MAX_KEY_LENGTH or any(c < " " or c == "\x7f" for c in value):
        raise validation_problem([{"pointer": HEADER,
                                   "detail": f"must be 1 to {MAX_KEY_LENGTH} characters without control characters"}])
    return value


def fingerprint(raw: bytes) -> str | None:
    """SHA-256 of the body's parsed JSON in canonical form; None when it is not acceptable JSON."""
    try:
        value = load_json(raw)
    except Problem:
        return None
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _replay(row: Any) -> Response:
    headers = json.loads(row.headers or "{}")
    headers[REPLAYED_HEADER] = "true"
    return Response(row.body, status_code=row.status, headers=headers, media_type="application/json")


class Idempotency:
    """Claims keys, stores first answers in the write's transaction, replays them."""

    def __init__(self, datastore: SQLAlchemyDatastore) -> None:
        self.datastore = datastore

    def claim(self, scope: Scope, request_hash: str) -> Claim | Response:
        """A fresh claim on the key, or the stored answer; 422 for another body, 409 while in flight."""
        for _ in range(5):
            try:
                outcome = self._try_claim(scope, request_hash)
            except (IntegrityError, sqlalchemy.exc.IntegrityError):
                continue  # another request claimed the key at the same instant: look again
            if outcome is not None:
                return outcome
        raise Problem(409, f"a request with this {HEADER} is still in flight; retry later")

    def _try_claim(self, scope: Scope, request_hash: str) -> Claim | Response | None:
        now = datetime.now(timezone.utc)
        created_at = _stamp(now)
        with self.datastore.transaction(commit=True) as session:
            session.execute(delete(table).where(table.c.created_at < _stamp(now - RETENTION)))
            row = session.execute(select(table.c.request_hash, table.c.state, table.c.status, table.c.headers,
                                         table.c.body, table.c.created_at).where(scope.where())).first()
            if row is None:
                session.execute(insert(table).values(
                    principal=scope.principal, method=scope.method, path=scope.path, idem_key=scope.key,
                    request_hash=request_hash, state=IN_FLIGHT, created_at=created_at))
                return Claim(scope, created_at)
            if row.request_hash != request_hash:
                raise validation_problem([{"pointer": "", "detail": f"this {HEADER} was first used with "
                                                                   "another body"}])
            if row.state == DONE:
                return _replay(row)
            if row.created_at >= _stamp(now - LEASE):
                raise Problem(409, f"a request with this {HEADER} is still in flight; retry later")
            taken = session.execute(update(table).where(Claim(scope, row.created_at).where())
                                    .values(created_at=created_at))
            return Claim(scope, created_at) if taken.rowcount == 1 else None

    def keep(self, claim: Claim, render: Render) -> Callable[[Session, dict[str, Any]], None]:
        """A Writer hook that stores the answer in the write's transaction, if the claim still holds."""

        def hook(session: Session, envelope: dict[str, Any]) -> None:
            response = render(envelope)
            headers = {name: response.headers[name] for name in KEPT_HEADERS if name in response.headers}
            done = session.execute(update(table).where(claim.where()).values(
                state=DONE, status=response.status_code, headers=json.dumps(headers), body=bytes(response.body)))
            if done.rowcount != 1:
                raise ClaimLost(claim.scope.key)

        return hook

    def release(self, claim: Claim) -> None:
        """Give a claim back after a failed write, so that a retry runs the request again."""
        with self.datastore.transaction(commit=True) as session:
            session.execute(delete(table).where(claim.where()))

    def run(self, scope: Scope, request_hash: str, write: Write, render: Render) -> Response:
        """Replay the stored answer, or write under a claim that is kept on success, given back on failure."""
        outcome = self.claim(scope, request_hash)
        if isinstance(outcome, Response):
            return outcome
        written = False
        try:
            envelope = write(self.keep(outcome, render))
            written = True
        except ClaimLost:
            raise Problem(409, f"this {HEADER} was taken over by a later request; nothing was recorded") from None
        finally:
            if not written:
                self.release(outcome)
        return render(envelope)


def _storable(scope: Scope) -> bool:
    """Whether the table can hold this scope; a path that cannot names no resource (404 follows)."""
    return len(scope.path) <= MAX_PATH_LENGTH and scope.path.isascii() and scope.path.isprintable()


async def respond(request: Request, datastore: SQLAlchemyDatastore, principal: str, raw: bytes, write: Write,
                  render: Render) -> Response:
    """Answer a POST that records one event, honouring its Idempotency-Key when it has one."""
    value = request.headers.get(HEADER)
    if value is None:
        return render(await run_in_threadpool(write, None))
    scope = Scope(principal, request.method, request.scope["path"], parse_key(value))
    request_hash = fingerprint(raw)
    if request_hash is None or not _storable(scope):
        # Nothing can have been stored for it: the write answers 404, 413 or 422 and records nothing.
        return render(await run_in_threadpool(write, None))
    return await run_in_threadpool(Idempotency(datastore).run, scope, request_hash, write, render)
