"""Time travel: run the same folds over an agreement's filtered stream."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from projections import compliance, timeline


@dataclass(frozen=True)
class Filters:
    """`as_of` (a date), `known_at` (UTC `...Z`), `version`: all optional, combined with AND."""

    as_of: str | None = None
    known_at: str | None = None
    version: int | None = None
    known_at_shown: str | None = None

    @property
    def empty(self) -> bool:
        return self.as_of is None and self.known_at is None and self.version is None

    def evaluated_on(self, today: str) -> str:
        if self.as_of is not None:
            return self.as_of
        if self.known_at is not None:
            return self.known_at[:10]
        return today

    def keeps(self, env: dict[str, Any]) -> bool:
        return timeline.passes(env, self.as_of, self.known_at, self.version)


def fold(envelopes: Iterable[dict[str, Any]], agreement_id: str, filters: Filters) -> dict[str, Any]:
    """The compliance state built from the events the filters keep."""
    state = compliance.initial(agreement_id)
    for env in envelopes:
        if filters.keeps(env):
            compliance.apply(state, env)
    return state


def answer(state: dict[str, Any], agreement_id: str, filters: Filters, today: str) -> dict[str, Any]:
    """The compliance answer of API.md for a folded state."""
    evaluated_on = filters.evaluated_on(today)
    concluded = state["concluded"]
    return {
        "agreement_id": agreement_id,
        "version": state["version"] if concluded else 0,
        "as_of": filters.as_of,
        "known_at": filters.known_at_shown or filters.known_at,
        "evaluated_on": evaluated_on,
        "parties": compliance.render(state, evaluated_on) if concluded else {},
    }


def timeline_items(envelopes: list[dict[str, Any]], filters: Filters) -> list[dict[str, Any]]:
    """Timeline items from the stream, as the read model serves them."""
    kept = [e for e in envelopes if filters.keeps(e)]
    retracted = {e["data"]["event_id"] for e in kept if e["type"] == "RecordCorrected"}
    items = []
    for env in sorted(kept, key=lambda e: (e["occurred_on"], e["position"])):
        item = dict(env)
        item["summary"] = timeline.summary(env)
        item["retracted"] = env["id"] in retracted
        items.append(item)
    return items
