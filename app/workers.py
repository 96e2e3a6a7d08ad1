"""Background workers: the projection runner, single-active and woken at once by new events."""
from __future__ import annotations

import signal
import threading
from typing import Any, Protocol

from app.leader import Listener, run_single_active
from projections.store import ReadModels


class Worker(Protocol):
    def start(self) -> None: ...
    def alive(self) -> bool: ...
    def stop(self) -> None: ...


def run_until_signalled(worker: Worker) -> None:
    """Run a worker in the foreground until SIGTERM or SIGINT, then stop it cleanly."""
    stopping = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stopping.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        worker.start()
        while worker.alive() and not stopping.wait(0.5):
            pass
    finally:
        worker.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not stopping.is_set():
        raise SystemExit("the worker stopped on its own (see the log above)")


class ProjectionWorker:
    """Keeps the read models caught up; on PostgreSQL only the advisory-lock holder runs."""

    name = "projections"

    def __init__(self, read_models: ReadModels, poll_seconds: float = 1.0, batch: int = 1000) -> None:
        self.read_models = read_models
        self.poll_seconds = poll_seconds
        self.batch = batch
        self._stop = threading.Event()
        self._listener = Listener(read_models.engine, read_models.wakeup)
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._listener.start()
        self._thread = threading.Thread(target=self.run, name=self.name, daemon=True)
        self._thread.start()

    def run(self) -> None:
        """Run in the current thread until stopped (used by `pactwatch worker projections`)."""
        run_single_active(self.name, self.read_models.engine, self.step, self.read_models.wakeup, self._stop,
                          self.poll_seconds)

    def step(self) -> None:
        """Apply one bounded batch; when more is waiting, come back at once (so a stop is never kept waiting)."""
        if self.read_models.run_once(self.batch) >= self.batch:
            self.read_models.wakeup.set()

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

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
