"""The timeline: one line of plain language per event, and which events a filter keeps."""
from __future__ import annotations

from typing import Any


def _amount(q: dict[str, Any]) -> str:
    value = q.get("value")
    return {"exact": f"exactly {value:,}" if value is not None else "an exact number",
            "at_least": f"at least {value:,}" if value is not None else "at least some",
            "all": "all", "unspecified": "an unspecified number"}.get(q["qualifier"], q["qualifier"])


def _transfer(t: dict[str, Any]) -> str:
    if t["count_basis"] == "undisclosed":
        figure = "an undisclosed number"
    elif t["count_basis"] == "approximate":
        figure = f"about {t['count']:,}"
    else:
        figure = f"{t['count']:,}"
    return f"{t['from']} → {t['to']} {figure} ({t['commitment_id']})"


def _clip(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def summary(env: dict[str, Any]) -> str:
    """A one-line human summary of an event."""
    d, t = env["data"], env["type"]
    if t == "AgreementConcluded":
        names = ", ".join(f"{p['name']} ({p['code']})" for p in d["parties"])
        return _clip(f"Agreement “{d['title']}” concluded in {d['venue']} between {names}")
    if t == "CommitmentMade":
        return _clip(f"{d['obligor']} commits to {d['action'].replace('_', ' ')} for {d['beneficiary']}: "
                     f"{_amount(d['quantity'])} {d['subject']}"
                     + (f", due by {d['due_by']}" if d.get("due_by") else ""))
    if t == "StageCompleted":
        return _clip(f"Stage {d['stage_id']} completed: " + "; ".join(_transfer(x) for x in d["transfers"]))
    if t == "ProgressClaimed":
        count = f" ({d['count']:,})" if d.get("count") is not None else ""
        return _clip(f"{d['party']} claims{count}: {d['statement']}")
    if t == "AccusationMade":
        return _clip(f"{d['accuser']} accuses {d['accused']}: {d['allegation']}")
    if t == "AccusationAnswered":
        return _clip(f"{d['by']} answers accusation {d['accusation_id']} ({d['stance'].replace('_', ' ')}): "
                     f"{d['statement']}")
    if t == "AccusationResolved":
        return _clip(f"Accusation {d['accusation_id']} resolved: {d['outcome']}"
                     + (f" ({d['note']})" if d.get("note") else ""))
    if t == "CommitmentFulfilmentDeclared":
        return _clip(f"{', '.join(d['declared_by'])} declare{'s' if len(d['declared_by']) == 1 else ''} "
                     f"commitment {d['commitment_id']} fulfilled")
    if t == "RecordCorrected":
        return _clip(f"Correction: event {d['event_id']} retracted ({d['reason']})")
    return t


def passes(env: dict[str, Any], as_of: str | None, known_at: str | None, version: int | None) -> bool:
    """Whether a filter keeps an event; corrections ignore `as_of`."""
    if known_at is not None and env["recorded_at"] > known_at:
        return False
    if version is not None and env["version"] > version:
        return False
    if as_of is not None and env["type"] != "RecordCorrected" and env["occurred_on"] > as_of:
        return False
    return True
