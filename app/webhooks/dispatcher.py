"""The dispatcher: each active subscription follows the log from its cursor, strictly in order, on its own.

`step()` runs in the single active worker whenever it is woken (a new event,
a changed subscription, a retry falling due). It starts a drain for each
subscription that has work; a drain runs in a bounded thread pool and sends
that subscription's pending events one after another, so a slow or dead
receiver holds one thread and delays no other subscription.
"""
from __future__ import annotations

import logging
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine

from app.webhooks import signing
from app.webhooks.delivery import Outcome, Sender
from app.webhooks.subscriptions import Attempt, Subscription, Subscriptions, now, parse_stamp, stamp
from projections.reader import head_position, log_page

log = logging.getLogger("pactwatch.webhooks")

BATCH = 200
MAX_IN_FLIGHT = 16
MAX_WAIT_SECONDS = 24 * 3600.0
JITTER = 0.2


def retry_delay(schedule: list[float], failures: int, retry_after: float | None,
                rng: random.Random | None = None) -> float | None:
    """Seconds to wait after the `failures`-th failed attempt at one event; None once the schedule is spent."""
    if failures > len(schedule):
        return None
    step = schedule[failures - 1] * (rng or random).uniform(1 - JITTER, 1 + JITTER)
    return min(MAX_WAIT_SECONDS, max(step, retry_after or 0.0))


class Dispatcher:
    """Starts one sequential drain per subscription with due work; arms an alarm for the next retry."""

    def __init__(self, engine: Engine, subscriptions: Subscriptions, sender: Sender, schedule: list[float],
                 wakeup: threading.Event, max_in_flight: int = MAX_IN_FLIGHT) -> None:
        self.engine = engine
        self.subscriptions = subscriptions
        self.sender = sender
        self.schedule = schedule
        self.wakeup = wakeup
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_in_flight, thread_name_prefix="webhook")
        self._lock = threading.Lock()
        self._busy: set[str] = set()
        self._again: set[str] = set()
        self._alarm: threading.Timer | None = None
        self._alarm_at = 0.0

    def step(self) -> None:
        """Start a drain for every active subscription behind the head whose retry, if any, is due."""
        with self.engine.connect() as conn:
            head = head_position(conn)
            subs = self.subscriptions.active(conn)
        self.sender.forget({s.id for s in subs})
        moment = now()
        for sub in subs:
            if sub.next_attempt_at is not None and parse_stamp(sub.next_attempt_at) > moment:
                self._arm(parse_stamp(sub.next_attempt_at))
            elif sub.position < head:
                self._start(sub.id)

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            if self._alarm is not None:
                self._alarm.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)

    # Drains.

    def _start(self, sid: str) -> None:
        with self._lock:
            if sid in self._busy:
                self._again.add(sid)
                return
            self._busy.add(sid)
        self._pool.submit(self._drain, sid)

    def _drain(self, sid: str) -> None:
        try:
            while not self._stop.is_set():
                self._deliver_pending(sid)
                with self._lock:
                    if sid not in self._again:
                        self._busy.discard(sid)
                        return
                    self._again.discard(sid)
        except Exception:  # a failed drain must not end the dispatcher: logged, retried on the next wake
            log.exception("webhook %s: delivery loop failed; it is retried on the next wake", sid)
        with self._lock:
            self._busy.discard(sid)
            self._again.discard(sid)

    def _deliver_pending(self, sid: str) -> None:
        """Send the subscription's pending events in log order until caught up, failed or changed."""
        sub = self.subscriptions.load(sid)
        while sub is not None and sub.active and not self._stop.is_set():
            if sub.next_attempt_at is not None and parse_stamp(sub.next_attempt_at) > now():
                return
            with self.engine.connect() as conn:
                head = head_position(conn)
                page = log_page(conn, sub.position, BATCH, sub.event_types)
            full = len(page) == BATCH
            scanned = page[-1]["position"] if full else max([head] + [e["position"] for e in page])
            for envelope in page:
                if not sub.matches(envelope):
                    continue
                sub = self._attempt(sub, envelope)
                if sub is None:
                    return
            if scanned > sub.position:
                if not self.subscriptions.advance(sub, scanned, None):
                    sub = self.subscriptions.load(sid)
                    continue
                sub = replace(sub, position=scanned)
            if not full:
                return

    def _attempt(self, sub: Subscription, envelope: dict[str, Any]) -> Subscription | None:
        """Deliver one event; the subscription as it now stands, or None to stop this drain."""
        started = now()
        outcome = self.sender.send(sub.id, sub.url, envelope["id"], signing.event_body(envelope), sub.signing_secrets)
        failures = sub.attempts + 1
        if outcome.delivered:
            attempt = self._logged(envelope, failures, outcome, started)
            if self.subscriptions.advance(sub, envelope["position"], attempt):
                return replace(sub, position=envelope["position"], attempts=0, next_attempt_at=None)
            return self.subscriptions.load(sub.id)
        delay = None if outcome.gone else retry_delay(self.schedule, failures, outcome.retry_after)
        retry_at = started + timedelta(seconds=delay) if delay is not None else None
        attempt = self._logged(envelope, failures, outcome, started, retry_at)
        reason = None
        if outcome.gone:
            reason = "the receiver answered 410 Gone"
        elif retry_at is None:
            reason = f"{failures} failed attempts at event {envelope['id']}; the last: {outcome.error}"
        if not self.subscriptions.failed(sub, attempt, reason):
            return self.subscriptions.load(sub.id)
        if retry_at is not None:
            self._arm(retry_at)
        log.info("webhook %s: attempt %d at position %d failed: %s", sub.id, failures, envelope["position"],
                 reason or outcome.error)
        return None

    @staticmethod
    def _logged(envelope: dict[str, Any], attempt: int, outcome: Outcome, started: datetime,
                retry_at: datetime | None = None) -> Attempt:
        return Attempt(position=envelope["position"], event_id=envelope["id"], attempt=attempt,
                       status_code=outcome.status_code, error=outcome.error, duration_ms=outcome.duration_ms,
                       at=stamp(started), next_retry_at=stamp(retry_at) if retry_at is not None else None)

    # The alarm that wakes the dispatcher when the earliest retry falls due.

    def _arm(self, when: datetime) -> None:
        at = when.timestamp()
        with self._lock:
            if self._stop.is_set():
                return
            if self._alarm is not None and self._alarm.is_alive() and self._alarm_at <= at:
                return
            if self._alarm is not None:
                self._alarm.cancel()
            self._alarm_at = at
            self._alarm = threading.Timer(max(0.0, at - time.time()) + 0.01, self.wakeup.set)
            self._alarm.daemon = True
            self._alarm.start()
