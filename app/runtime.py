"""Wires the parts together once per process: the bootstrap of pactwatch."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine

from app.commands import Writer
from app.keys import Keys
from app.queries import Reader
from app.settings import Settings
from app.webhooks.service import Webhooks
from app.workers import ProjectionWorker
from domain.agreement import Agreement
from domain.application import Pactwatch
from projections.store import ReadModels


@dataclass
class Runtime:
    settings: Settings
    app: Pactwatch
    engine: Engine
    read_models: ReadModels
    writer: Writer
    reader: Reader
    keys: Keys
    webhooks: Webhooks
    workers: list[Any] = field(default_factory=list)
    wakeups: list[threading.Event] = field(default_factory=list)

    def wake(self, envelope: dict[str, Any] | None = None) -> None:
        """Called after each commit: wake every in-process worker at once."""
        for event in self.wakeups:
            event.set()

    def start_workers(self) -> None:
        worker = ProjectionWorker(self.read_models)
        worker.start()
        self.workers.append(worker)
        webhook_worker = self.webhooks.worker()
        webhook_worker.start()
        self.workers.append(webhook_worker)

    def stop_workers(self) -> None:
        for worker in reversed(self.workers):
            worker.stop()
        self.workers.clear()

    def close(self) -> None:
        self.stop_workers()
        self.engine.dispose()


def build(settings: Settings) -> Runtime:
    """Build the application, read models and services for these settings."""
    app_cls = type("Pactwatch", (Pactwatch,), {"snapshotting_intervals": {Agreement: settings.snapshot_interval}})
    app = app_cls(env=settings.eventsourcing_env())
    datastore = app.factory.datastore
    # Switch a SQLite file to WAL now, not inside the first write: changing the journal
    # mode needs the file to itself, and another process may be writing by then.
    datastore.init_sqlite_wal_mode()
    read_models = ReadModels(datastore)
    runtime = Runtime(settings=settings, app=app, engine=datastore.engine, read_models=read_models,
                      writer=Writer(app), reader=Reader(datastore.engine, read_models,
                                                       settings.read_your_writes_wait_seconds),
                      keys=Keys(datastore.engine), webhooks=Webhooks(datastore, settings))
    runtime.wakeups.append(read_models.wakeup)
    runtime.wakeups.append(runtime.webhooks.wakeup)
    runtime.writer.after_commit = runtime.wake
    return runtime
