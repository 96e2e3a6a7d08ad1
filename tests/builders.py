"""Builders of request bodies for tests: defaults that pass, overrides that change one thing."""
from __future__ import annotations

from typing import Any

SOURCE = {"publisher": "Test Wire"}


def agreement(agreement_id: str = "accord", **over: Any) -> dict[str, Any]:
    body = {"id": agreement_id, "title": "Test accord", "concluded_on": "2025-01-10", "venue": "Geneva",
            "parties": [{"code": "AA", "name": "Alpha"}, {"code": "BB", "name": "Beta"}],
            "mediators": [], "source": SOURCE}
    body.update(over)
    return body


def commitment(commitment_id: str = "c1", obligor: str = "AA", beneficiary: str = "BB", qualifier: str = "exact",
               value: int | None = 100, **over: Any) -> dict[str, Any]:
    body = {"commitment_id": commitment_id, "obligor": obligor, "beneficiary": beneficiary,
            "action": "release_prisoners", "subject": "detainees",
            "quantity": {"qualifier": qualifier, "value": value}, "source": SOURCE}
    body.update(over)
    return body


def transfer(commitment_id: str = "c1", frm: str = "AA", to: str = "BB", count: int | None = 10,
             basis: str = "reported") -> dict[str, Any]:
    return {"commitment_id": commitment_id, "from": frm, "to": to, "count": count, "count_basis": basis}


def stage(stage_id: str = "s1", completed_on: str = "2025-02-01", transfers: list[dict[str, Any]] | None = None,
          **over: Any) -> dict[str, Any]:
    body = {"stage_id": stage_id, "completed_on": completed_on, "transfers": transfers or [transfer()],
            "source": SOURCE}
    body.update(over)
    return body


def claim(claim_id: str = "k1", party: str = "AA", **over: Any) -> dict[str, Any]:
    body = {"claim_id": claim_id, "party": party, "statement": "we did it", "made_on": "2025-02-02",
            "source": SOURCE}
    body.update(over)
    return body


def accusation(accusation_id: str = "a1", accuser: str = "BB", accused: str = "AA", **over: Any) -> dict[str, Any]:
    body = {"accusation_id": accusation_id, "accuser": accuser, "accused": accused,
            "allegation": "stalling", "made_on": "2025-02-03", "source": SOURCE}
    body.update(over)
    return body


def response(by: str = "AA", stance: str = "denied", **over: Any) -> dict[str, Any]:
    body = {"by": by, "stance": stance, "statement": "no", "made_on": "2025-02-04", "source": SOURCE}
    body.update(over)
    return body


def resolution(outcome: str = "upheld", **over: Any) -> dict[str, Any]:
    body = {"outcome": outcome, "note": "", "made_on": "2025-02-05", "source": SOURCE}
    body.update(over)
    return body


def declaration(*parties: str, **over: Any) -> dict[str, Any]:
    body = {"declared_by": list(parties or ("BB",)), "made_on": "2025-02-06", "source": SOURCE}
    body.update(over)
    return body


def correction(event_id: str, **over: Any) -> dict[str, Any]:
    body = {"event_id": event_id, "reason": "wrong", "made_on": "2025-02-07", "source": SOURCE}
    body.update(over)
    return body
