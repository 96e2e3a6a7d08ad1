"""Background workers: the projection runner, single-active and woken at once by new events."""
from __future__ import annotations

import threading

from app.leader import Listener, run_single_active
from projections.store import ReadModels


class ProjectionWorker:
    """Keeps the read models caught up; on PostgreSQL only the advisory-lock holder runs."""

    name = "projections"

    def __init__(self, read_models: ReadModels, poll_seconds: float = 1.0) -> None:
        self.read_models = read_models
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._listener = Listener(read_models.engine, read_models.wakeup)
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._listener.start()
        self._thread = threading.Thread(target=self.run, name=self.name, daemon=True)
        self._thread.start()

    def run(self) -> None:
        """Run in the current thread until stopped (used by `pactwatch worker projections`)."""
        run_single_active(self.name, self.read_models.engine, self.read_models.catch_up,
                          self.read_models.wakeup, self._stop, self.poll_seconds)

    def wait(self) -> None:
        """Block until the worker thread ends (after stop(), or a signal)."""
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=1.0)

    def stop(self) -> None:
        self._stop.set()
        self.read_models.wakeup.set()
        self._listener.stop()
        if self._thread is not None:
            self._thread.join(timeout=10)
