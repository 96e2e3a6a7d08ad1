"""Single-active workers: a PostgreSQL advisory lock per worker kind, and wake-ups by LISTEN/NOTIFY.

On SQLite there is one process, so the in-process worker is always the
leader and is woken by the write path directly.
"""
from __future__ import annotations

import logging
import os
import select
import threading
import zlib
from collections.abc import Callable

import psycopg
import sqlalchemy.exc
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from projections.schema import EVENTS_TABLE

log = logging.getLogger("pactwatch.leader")


def lock_key(name: str) -> int:
    """A stable 31-bit advisory-lock key for a worker kind."""
    return zlib.crc32(f"pactwatch:{name}".encode()) & 0x7FFFFFFF


def holder_name(name: str) -> str:
    """How the session holding the lock of a worker kind names itself: `pactwatch:<kind>:<pid>`."""
    return f"pactwatch:{name}:{os.getpid()}"


def holder(engine: Engine, name: str) -> str | None:
    """The application name of the session that holds the lock of a worker kind (PostgreSQL), or None."""
    query = text("""
        SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 0 AND l.objid = :k AND l.objsubid = 1
          AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())""")
    with engine.connect() as conn:
        return conn.execute(query, {"k": lock_key(name)}).scalar()


class Leadership:
    """Holds the advisory lock of one worker kind on a dedicated connection."""

    def __init__(self, engine: Engine, name: str) -> None:
        self.engine = engine
        self.name = name
        self.key = lock_key(name)
        self._conn: Connection | None = None

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def try_acquire(self) -> bool:
        if not self.is_postgres:
            return True
        if self._conn is None:
            self._conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            # Names the lock's session before it may hold the lock, so that operators (and holder())
            # can always see which process leads.
            self._conn.execute(text("SELECT set_config('application_name', :n, false)"),
                               {"n": holder_name(self.name)})
        got = bool(self._conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar())
        if not got:
            self.release()
        return got

    def still_held(self) -> bool:
        """False when the lock's session is gone (then another instance may lead)."""
        if not self.is_postgres:
            return True
        if self._conn is None:
            return False
        try:
            self._conn.execute(text("SELECT 1"))
            return True
        except sqlalchemy.exc.SQLAlchemyError:  # a dead connection means the lock is lost
            log.warning("worker %s lost its lock session", self.name, exc_info=True)
            self.release()
            return False

    def release(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except sqlalchemy.exc.SQLAlchemyError:  # closing a broken connection may fail; the lock dies with it
                pass
            self._conn = None


class Listener:
    """Sets `event` whenever the event store NOTIFYs a new event (PostgreSQL only)."""

    def __init__(self, engine: Engine, event: threading.Event, channel: str = EVENTS_TABLE) -> None:
        self.engine = engine
        self.event = event
        self.channel = channel
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.engine.dialect.name != "postgresql":
            return
        self._thread = threading.Thread(target=self._run, name=f"listen-{self.channel}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with self.engine.connect() as sa_conn:
                    sa_conn = sa_conn.execution_options(isolation_level="AUTOCOMMIT")
                    raw = sa_conn.connection.driver_connection
                    raw.execute(f"LISTEN {self.channel}")
                    self.event.set()
                    while not self._stop.is_set():
                        if select.select([raw.fileno()], [], [], 0.5)[0]:
                            for _ in raw.notifies(timeout=0):
                                pass
                            self.event.set()
            except (sqlalchemy.exc.SQLAlchemyError, psycopg.Error, OSError):  # reconnect after a lost connection
                log.warning("LISTEN connection lost; reconnecting", exc_info=True)
                self._stop.wait(1.0)


def run_single_active(name: str, engine: Engine, step: Callable[[], None], wakeup: threading.Event,
                      stop: threading.Event, poll_seconds: float = 1.0, standby_seconds: float = 1.0) -> None:
    """Run `step` whenever woken, only while this instance holds the leadership of `name`."""
    leadership = Leadership(engine, name)
    try:
        while not stop.is_set():
            try:
                acquired = leadership.try_acquire()
            except sqlalchemy.exc.SQLAlchemyError:  # the store is unreachable: stand by and try again
                log.warning("worker %s cannot reach the store", name, exc_info=True)
                leadership.release()
                acquired = False
            if not acquired:
                stop.wait(standby_seconds)
                continue
            log.info("worker %s is active", name)
            while not stop.is_set() and leadership.still_held():
                wakeup.clear()
                try:
                    step()
                except Exception:  # keep leading; the failed batch is retried on the next wake
                    log.exception("worker %s step failed", name)
                    stop.wait(0.5)
                wakeup.wait(poll_seconds)
    finally:
        leadership.release()
        log.info("worker %s stopped", name)
