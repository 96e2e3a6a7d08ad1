"""The write path: one use case, its hash-chain row and its hooks in one transaction."""
from __future__ import annotations

import threading
import uuid
import weakref
from collections.abc import Callable
from typing import Any

import sqlalchemy.exc
from eventsourcing.persistence import IntegrityError
from sqlalchemy.orm import Session

from app.body import validate
from app.problems import Problem
from app.schemas import BODIES, split
from domain.agreement import event_meta
from domain.application import Pactwatch
from domain.errors import AlreadyExists, DomainError
from domain.values import agreement_uuid
from projections import ledger

CONFLICT_RETRIES = 50
Hook = Callable[[Session, dict[str, Any]], None]


class _AgreementLock:
    """A lock that can be weakly referenced (a bare threading.Lock cannot)."""

    __slots__ = ("_lock", "__weakref__")

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def __enter__(self) -> None:
        self._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


class Writer:
    """Records one event per call; retries internally when another writer won the race."""

    def __init__(self, app: Pactwatch, after_commit: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.app = app
        self.datastore = app.factory.datastore
        self.after_commit = after_commit
        self._agreement_locks: weakref.WeakValueDictionary[str, _AgreementLock] = weakref.WeakValueDictionary()
        self._locks_guard = threading.Lock()

    def conclude(self, raw: bytes, recorded_by: str, hook: Hook | None = None) -> dict[str, Any]:
        body = _body("agreement", raw)

        def attempt(meta: dict[str, Any]) -> list[Any]:
            return self.app.conclude_agreement(body, meta)

        try:
            return self._run(attempt, recorded_by, hook, retries=0)
        except (IntegrityError, sqlalchemy.exc.IntegrityError) as exc:
            data, _ = body()
            raise AlreadyExists(f"agreement {data['id']!r} already exists", "/id") from exc

    def record(self, agreement_id: str, kind: str, raw: bytes, recorded_by: str, *,
               expected_version: int | None = None, accusation_id: str | None = None,
               commitment_id: str | None = None, hook: Hook | None = None) -> dict[str, Any]:
        body = _body(kind, raw, accusation_id=accusation_id, commitment_id=commitment_id)

        def attempt(meta: dict[str, Any]) -> list[Any]:
            return self.app.record(agreement_id, kind, body, meta, expected_version=expected_version,
                                   accusation_id=accusation_id, commitment_id=commitment_id)

        # The aggregate cache hands out the cached object itself (no deep copy, which
        # costs O(events) per write): one writer per agreement in this process, and
        # the cached object is evicted whenever a write does not commit.
        with self._lock_of(agreement_id):
            return self._run(attempt, recorded_by, hook, retries=CONFLICT_RETRIES, agreement_id=agreement_id)

    def _run(self, attempt: Callable[[dict[str, Any]], list[Any]], recorded_by: str, hook: Hook | None,
             retries: int, agreement_id: str | None = None) -> dict[str, Any]:
        for n in range(retries + 1):
            try:
                with self.datastore.transaction(commit=True) as session:
                    # Under the log's write lock: the event's recorded_at follows its position.
                    ledger.lock_log(session)
                    meta = event_meta(str(uuid.uuid4()), recorded_by, ledger.next_recorded_at(session))
                    envelope = ledger.append(session, attempt(meta))[0]
                    if hook is not None:
                        hook(session, envelope)
                    # Commit here, not in the library's exit: on a SQLite file it swallows a failed
                    # commit ("database is locked"), which would answer 201 for a write never made.
                    session.commit()
            except (DomainError, Problem):
                raise  # refused before the aggregate changed: the cached object is intact
            except BaseException as exc:
                if agreement_id is not None:
                    self._evict(agreement_id)
                if not isinstance(exc, (IntegrityError, sqlalchemy.exc.IntegrityError)) or n == retries:
                    raise
                continue
            if self.after_commit is not None:
                self.after_commit(envelope)
            return envelope
        raise AssertionError("unreachable")

    def _lock_of(self, agreement_id: str) -> _AgreementLock:
        """This process's lock of one agreement, kept only while someone holds a reference to it."""
        with self._locks_guard:
            lock = self._agreement_locks.get(agreement_id)
            if lock is None:
                lock = self._agreement_locks[agreement_id] = _AgreementLock()
            return lock

    def _evict(self, agreement_id: str) -> None:
        cache = self.app.repository.cache
        if cache is not None:
            try:
                cache.get(agreement_uuid(agreement_id), evict=True)
            except KeyError:
                pass


def _body(kind: str, raw: bytes, **path_ids: str | None) -> Callable[[], tuple[dict[str, Any], dict[str, Any]]]:
    """Validation deferred until the use case has made its 404 and 412 checks."""
    cache: list[tuple[dict[str, Any], dict[str, Any]]] = []

    def parse() -> tuple[dict[str, Any], dict[str, Any]]:
        if not cache:
            data, source = split(validate(BODIES[kind], raw))
            data.update({k: v for k, v in path_ids.items() if v is not None})
            cache.append((data, source))
        return cache[0][0], cache[0][1]

    return parse
