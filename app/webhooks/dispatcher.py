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
FLUSH_EVERY = 100
FLUSH_SECONDS = 0.2
MAX_IN_FLIGHT = 16
MAX_WAIT_SECONDS = 24 * 3600.0
JITTER = 0.2
DONE, CHANGED, STOPPED = "done", "changed", "stopped"


def retry_delay(schedule: list[float], failures: int, retry_after: float | None,
                rng: random.Random | None = None) -> float | None:
    """Seconds to wait after the `failures`-th failed attempt at one event; None once the schedule is spent."""
    if failures > len(schedule):
        return None
    step = schedule[failures - 1] * (rng or random).uniform(1 - JITTER, 1 + JITTER)
    return min(MAX_WAIT_SECONDS, max(step, retry_after or 0.0))


class _Run:
    """One drain's state: the subscription as last seen, and deliveries made but not yet committed."""

    def __init__(self, sid: str, sub: Subscription | None) -> None:
        self.sid = sid
        self.sub = sub
        self.position = sub.position if sub is not None else 0
        self.done: list[Attempt] = []
        self.committed_at = time.monotonic()

    @property
    def pending(self) -> bool:
        """Deliveries made, or unmatched events passed, that are not committed yet."""
        return bool(self.done) or (self.sub is not None and self.position != self.sub.position)


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
        self._busy: dict[str, threading.Event] = {}
        self._again: dict[str, Subscription] = {}
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
                self._start(sub)

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            for signal in self._busy.values():
                signal.set()
            if self._alarm is not None:
                self._alarm.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)

    # Drains.

    def _start(self, sub: Subscription) -> None:
        with self._lock:
            if sub.id in self._busy:
                self._again[sub.id] = sub
                self._busy[sub.id].set()
                return
            self._busy[sub.id] = threading.Event()
        self._pool.submit(self._drain, sub)

    def _drain(self, sub: Subscription) -> None:
        """Deliver until caught up; linger a moment for new events so that cursor commits are batched."""
        try:
            # The step's row may predate the last commit of a drain that just ended: start from the stored one.
            run = _Run(sub.id, self.subscriptions.load(sub.id))
            while not self._stop.is_set():
                self._deliver_pending(run)
                fresh = self._linger(run) if run.pending else None
                if fresh is None:
                    self._flush(run)
                    with self._lock:
                        fresh = self._again.pop(sub.id, None)
                        if fresh is None:
                            del self._busy[sub.id]
                            return
                self._refresh(run, fresh)
            self._flush(run)
        except Exception:  # a failed drain must not end the dispatcher: logged, retried on the next wake
            log.exception("webhook %s: delivery loop failed; it is retried on the next wake", sub.id)
        with self._lock:
            self._busy.pop(sub.id, None)
            self._again.pop(sub.id, None)

    def _linger(self, run: _Run) -> Subscription | None:
        """Wait until the step announces more work or the batch is due for commit; the announced row, if any."""
        sid = run.sid
        with self._lock:
            signal = self._busy[sid]
        remaining = FLUSH_SECONDS - (time.monotonic() - run.committed_at)
        if remaining > 0:
            signal.wait(remaining)
        with self._lock:
            signal.clear()
            return None if self._stop.is_set() else self._again.pop(sid, None)

    def _refresh(self, run: _Run, fresh: Subscription) -> None:
        """Take in a change made by someone else (replay, resume, new filter); our own commits are no change."""
        if fresh == run.sub:
            return
        self._flush(run)
        self._reload(run)

    def _reload(self, run: _Run) -> None:
        """Forget what this drain believed: the subscription and its cursor as stored now."""
        run.sub = self.subscriptions.load(run.sid)
        run.position = run.sub.position if run.sub is not None else 0
        run.done = []

    def _deliver_pending(self, run: _Run) -> None:
        """Send the subscription's pending events in log order until caught up, failed or changed."""
        while run.sub is not None and run.sub.active and not self._stop.is_set():
            sub = run.sub
            if sub.next_attempt_at is not None and parse_stamp(sub.next_attempt_at) > now():
                return
            with self.engine.connect() as conn:
                # Without a type filter the page holds every event, so the head adds nothing to skip.
                head = head_position(conn) if sub.event_types else 0
                page = log_page(conn, run.position, BATCH, sub.event_types)
            full = len(page) == BATCH
            scanned = page[-1]["position"] if full else max([head] + [e["position"] for e in page])
            ended = self._send_page(run, [e for e in page if sub.matches(e)])
            if ended == STOPPED:
                return
            if ended == CHANGED:
                continue
            run.position = max(run.position, scanned)
            if not full:
                return

    def _send_page(self, run: _Run, pending: list[dict[str, Any]]) -> str:
        """Deliver `pending` in order: DONE, CHANGED (someone changed the subscription: start again) or STOPPED."""
        for envelope in pending:
            sub = run.sub
            if self._stop.is_set() or sub is None:
                return STOPPED
            started = now()
            outcome = self.sender.send(sub.id, sub.url, envelope["id"], signing.event_body(envelope),
                                       sub.signing_secrets)
            if outcome.delivered:
                run.done.append(self._logged(envelope, (0 if run.done else sub.attempts) + 1, outcome, started))
                run.position = envelope["position"]
                if len(run.done) >= FLUSH_EVERY or time.monotonic() - run.committed_at > FLUSH_SECONDS:
                    if not self._flush(run):
                        return CHANGED
                continue
            if not self._flush(run):
                return CHANGED
            failed = self._failed(run.sub or sub, envelope, outcome, started)
            self._reload(run)
            return STOPPED if failed else CHANGED
        return DONE

    def _flush(self, run: _Run) -> bool:
        """Commit the cursor and the logged deliveries; on a change made meanwhile, reload (False)."""
        sub = run.sub
        if sub is None or not run.pending:
            return True
        moved = self.subscriptions.advance(sub, run.position, run.done)
        run.done = []
        run.committed_at = time.monotonic()
        if moved:
            run.sub = replace(sub, position=run.position, attempts=0, next_attempt_at=None)
            return True
        self._reload(run)
        return False

    def _failed(self, sub: Subscription, envelope: dict[str, Any], outcome: Outcome, started: datetime) -> bool:
        """Log a failed attempt and schedule its retry, or disable the subscription; False when it changed meanwhile."""
        failures = sub.attempts + 1
        delay = None if outcome.gone else retry_delay(self.schedule, failures, outcome.retry_after)
        retry_at = started + timedelta(seconds=delay) if delay is not None else None
        reason = None
        if outcome.gone:
            reason = "the receiver answered 410 Gone"
        elif retry_at is None:
            reason = f"{failures} failed attempts at event {envelope['id']}; the last: {outcome.error}"
        attempt = self._logged(envelope, failures, outcome, started, retry_at)
        if not self.subscriptions.failed(sub, attempt, reason):
            return False
        if retry_at is not None:
            self._arm(retry_at)
        log.info("webhook %s: attempt %d at position %d failed: %s", sub.id, failures, envelope["position"],
                 reason or outcome.error)
        return True

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
