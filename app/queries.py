"""The read path: read models when fresh, the same folds over the store when not."""
from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from domain.errors import AgreementNotFound
from projections import reader, replay
from projections.replay import Filters
from projections.schema import events
from projections.store import ReadModels

REPLAY_AT_ONCE_BELOW = 2000


def today() -> str:
    return datetime.now(timezone.utc).date().isoformat()


class Reader:
    """Answers every GET with what the store has acknowledged (read-your-writes)."""

    def __init__(self, engine: Engine, read_models: ReadModels, wait_seconds: float = 2.0) -> None:
        self.engine = engine
        self.read_models = read_models
        self.wait_seconds = wait_seconds
        self._rendered: OrderedDict[tuple[str, int, str], bytes] = OrderedDict()
        self._rendered_lock = threading.Lock()

    # Compliance.

    def compliance(self, agreement_id: str, filters: Filters) -> dict[str, Any]:
        return json.loads(self.compliance_json(agreement_id, filters))

    def compliance_json(self, agreement_id: str, filters: Filters) -> bytes:
        """The compliance answer as JSON bytes (cached per version and day on the live path)."""
        with self.engine.connect() as conn:
            if not filters.empty:
                envelopes = reader.agreement_events(conn, agreement_id, filters.version)
                if not envelopes:
                    raise AgreementNotFound(agreement_id)
                state = replay.fold(envelopes, agreement_id, filters)
                return _dumps(replay.answer(state, agreement_id, filters, today()))
            # The answer at a version is the same whoever folds it: a cached one is
            # served without reading (and parsing) the stored state, which grows
            # with the agreement.
            current = reader.agreement_version(conn, agreement_id)
            with self._rendered_lock:
                cached = self._rendered.get((agreement_id, current, today()))
            if cached is not None:
                return cached
            state = self._fresh_state(conn, agreement_id, current)
        key = (agreement_id, state["version"], today())
        with self._rendered_lock:
            cached = self._rendered.get(key)
        if cached is None:
            cached = _dumps(replay.answer(state, agreement_id, filters, key[2]))
            with self._rendered_lock:
                self._rendered[key] = cached
                while len(self._rendered) > 256:
                    self._rendered.popitem(last=False)
        return cached

    def _fresh_state(self, conn: Any, agreement_id: str, current: int | None = None) -> dict[str, Any]:
        if current is None:
            current = reader.agreement_version(conn, agreement_id)
        if current == 0:
            raise AgreementNotFound(agreement_id)
        if self._caught_up(conn, agreement_id, current):
            state = self.read_models.compliance_state(conn, agreement_id)
            if state is not None and state["version"] >= current:
                return state
        envelopes = reader.agreement_events(conn, agreement_id, current)
        return replay.fold(envelopes, agreement_id, Filters())

    def _caught_up(self, conn: Any, agreement_id: str, current: int) -> bool:
        if self.read_models.compliance_version(conn, agreement_id) >= current:
            return True
        if current < REPLAY_AT_ONCE_BELOW:
            self.read_models.wakeup.set()
            return False
        deadline = time.monotonic() + self.wait_seconds
        while time.monotonic() < deadline:
            self.read_models.wakeup.set()
            time.sleep(0.005)
            with self.engine.connect() as fresh:
                if self.read_models.compliance_version(fresh, agreement_id) >= current:
                    return True
        return False

    # Timeline.

    def timeline(self, agreement_id: str, filters: Filters) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            current = reader.agreement_version(conn, agreement_id)
            if current == 0:
                raise AgreementNotFound(agreement_id)
            if self._caught_up(conn, agreement_id, current):
                return self.read_models.timeline(conn, agreement_id, filters.as_of, filters.known_at,
                                                 filters.version)
            return replay.timeline_items(reader.agreement_events(conn, agreement_id, current), filters)

    # Agreements and events.

    def agreements(self) -> list[dict[str, Any]]:
        """Every agreement in creation order, with its current version."""
        latest = events.alias("latest")
        version = (select(func.max(latest.c.originator_version))
                   .where(latest.c.originator_id == events.c.originator_id).scalar_subquery())
        with self.engine.connect() as conn:
            rows = conn.execute(select(events.c.state, version)
                                .where(events.c.topic == reader.topic_of("AgreementConcluded"))
                                .order_by(events.c.id)).all()
        return [{**_header(json.loads(state)["data"]), "version": v} for state, v in rows]

    def agreement(self, agreement_id: str) -> dict[str, Any]:
        """One agreement: its header, parties, live commitments and version."""
        with self.engine.connect() as conn:
            state = self._fresh_state(conn, agreement_id)
        header = state["header"]
        return {
            "id": agreement_id, **header,
            "parties": [{"code": c, "name": n} for c, n in state["parties"].items()],
            "commitments": [{
                "commitment_id": cid, "obligor": c["obligor"], "beneficiary": c["beneficiary"],
                "action": c["action"], "subject": c["subject"],
                "quantity": {"qualifier": c["qualifier"], "value": c["value"]},
                "due_by": c["due_by"], "reciprocal_of": c["reciprocal_of"],
            } for cid, c in state["commitments"].items()],
            "accusations": [{"accusation_id": aid, **{k: a[k] for k in ("accuser", "accused", "commitment_id")},
                             "open": a["resolved_by"] is None, "outcome": a["outcome"]}
                            for aid, a in state["accusations"].items()],
            "version": state["version"],
        }

    def require_agreement(self, agreement_id: str) -> None:
        """404 (AgreementNotFound) unless the store has this agreement."""
        with self.engine.connect() as conn:
            if reader.agreement_version(conn, agreement_id) == 0:
                raise AgreementNotFound(agreement_id)

    def agreement_events(self, agreement_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            items = reader.agreement_events(conn, agreement_id)
        if not items:
            raise AgreementNotFound(agreement_id)
        return items

    def log(self, after: int, limit: int, types: list[str]) -> dict[str, Any]:
        with self.engine.connect() as conn:
            items = reader.log_page(conn, after, limit, types)
        return {"items": items, "next_after": items[-1]["position"] if items else after}


def _header(data: dict[str, Any]) -> dict[str, Any]:
    return {k: data[k] for k in ("id", "title", "concluded_on", "venue", "parties", "mediators")}


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
