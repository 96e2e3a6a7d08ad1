"""The webhook component as the runtime holds it: subscriptions, the sender, and the dispatching worker."""
from __future__ import annotations

import logging
import threading
import uuid
from typing import Any

from eventsourcing_sqlalchemy.datastore import SQLAlchemyDatastore
from sqlalchemy import text

from app.leader import Listener, run_single_active
from app.settings import Settings
from app.webhooks import signing
from app.webhooks.delivery import Sender
from app.webhooks.dispatcher import Dispatcher
from app.webhooks.subscriptions import Attempt, Subscriptions, now, stamp
from projections.schema import EVENTS_TABLE

log = logging.getLogger("pactwatch.webhooks")


class Webhooks:
    """What the routes and the runtime use; `wakeup` is set after every commit of an event."""

    def __init__(self, datastore: SQLAlchemyDatastore, settings: Settings) -> None:
        self.engine = datastore.engine
        self.settings = settings
        self.subscriptions = Subscriptions(datastore)
        self.sender = Sender(settings.webhook_allow_private, settings.webhook_timeout_seconds)
        self.wakeup = threading.Event()

    def wake(self) -> None:
        """Wake the dispatcher after a change of subscription, in this process and (PostgreSQL) in others."""
        self.wakeup.set()
        if self.engine.dialect.name == "postgresql":
            with self.engine.connect() as conn:
                conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": EVENTS_TABLE})
                conn.commit()

    def ping(self, sid: str) -> dict[str, Any] | None:
        """Send a signed ping outside the log, with its own webhook-id, and log the attempt."""
        sub = self.subscriptions.load(sid)
        if sub is None:
            return None
        msg_id, moment = str(uuid.uuid4()), now()
        outcome = self.sender.send(None, sub.url, msg_id, signing.ping_body(moment), sub.signing_secrets)
        return self.subscriptions.log_ping(sid, Attempt(
            position=None, event_id=msg_id, attempt=1, status_code=outcome.status_code, error=outcome.error,
            duration_ms=outcome.duration_ms, at=stamp(moment)))

    def worker(self, poll_seconds: float = 1.0) -> WebhookWorker:
        """A new dispatching worker (not started)."""
        return WebhookWorker(self, poll_seconds)


class WebhookWorker:
    """Runs a dispatcher; on PostgreSQL only the holder of the `webhooks` advisory lock dispatches."""

    name = "webhooks"

    def __init__(self, webhooks: Webhooks, poll_seconds: float = 1.0) -> None:
        self.webhooks = webhooks
        self.poll_seconds = poll_seconds
        self.dispatcher = Dispatcher(webhooks.engine, webhooks.subscriptions, webhooks.sender,
                                     webhooks.settings.retry_schedule, webhooks.wakeup)
        self._stop = threading.Event()
        self._listener = Listener(webhooks.engine, webhooks.wakeup)
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        log.info("webhook worker started; it dispatches while it holds the lead")
        self._listener.start()
        self._thread = threading.Thread(target=self.run, name=self.name, daemon=True)
        self._thread.start()

    def run(self) -> None:
        """Dispatch in the current thread until stopped."""
        try:
            run_single_active(self.name, self.webhooks.engine, self.dispatcher.step, self.webhooks.wakeup,
                              self._stop, self.poll_seconds)
        finally:
            self.dispatcher.close()

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        self.webhooks.wakeup.set()
        self._listener.stop()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.dispatcher.close()
        self.webhooks.sender.close()
