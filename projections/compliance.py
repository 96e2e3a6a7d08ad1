"""The compliance fold: `state = apply(state, envelope)` and its rendering.

The state is a JSON-friendly dict, so the live read model stores it as is and
time travel builds it in memory from a filtered stream: both run this code.
A retraction undoes exactly what the retracted event added, so that the
retracted event counts as never recorded. Status depends on the day of
evaluation and is therefore computed when rendering, never stored.
"""
from __future__ import annotations

from typing import Any

from domain.values import COUNTED_QUALIFIERS


UNDO_KEYS = ("stages", "claims", "events")


def split(state: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(view, undo): what rendering needs, and what only a later retraction needs."""
    view = {k: v for k, v in state.items() if k not in UNDO_KEYS}
    return view, {k: state[k] for k in UNDO_KEYS}


def join(view: dict[str, Any], undo: dict[str, Any]) -> dict[str, Any]:
    return {**view, **undo}


def initial(agreement_id: str) -> dict[str, Any]:
    return {
        "agreement_id": agreement_id,
        "version": 0,
        "concluded": False,
        "header": None,
        "parties": {},
        "commitments": {},
        "stages": {},
        "claims": {},
        "accusations": {},
        "events": {},
    }


def apply(state: dict[str, Any], env: dict[str, Any]) -> dict[str, Any]:
    """Fold one envelope into the state (mutated in place and returned)."""
    handler = _HANDLERS.get(env["type"])
    if env["type"] == "AgreementConcluded" or state["concluded"]:
        if env["version"] > state["version"]:
            state["version"] = env["version"]
        if handler is not None:
            handler(state, env["data"], env["id"])
    return state


def _concluded(state: dict[str, Any], d: dict[str, Any], eid: str) -> None:
    state["concluded"] = True
    state["header"] = {k: d[k] for k in ("title", "concluded_on", "venue", "mediators")}
    state["parties"] = {p["code"]: p["name"] for p in d["parties"]}


def _commitment(state: dict[str, Any], d: dict[str, Any], eid: str) -> None:
    q = d["quantity"]
    state["commitments"][d["commitment_id"]] = {
        "obligor": d["obligor"], "beneficiary": d["beneficiary"], "action": d["action"],
        "subject": d["subject"], "qualifier": q["qualifier"], "value": q.get("value"),
        "due_by": d.get("due_by"), "reciprocal_of": d.get("reciprocal_of"),
        "reported": 0, "approximate": 0, "undisclosed": 0,
        "stages": {}, "claims": [], "declared": {},
    }
    state["events"][eid] = ["commitment", d["commitment_id"]]


def _stage(state: dict[str, Any], d: dict[str, Any], eid: str) -> None:
    commitments = state["commitments"]
    kept = [[t["commitment_id"], t["count_basis"], t.get("count")]
            for t in d["transfers"] if t["commitment_id"] in commitments]
    for cid, basis, count in kept:
        _add_transfer(commitments[cid], d["stage_id"], basis, count, +1)
    state["stages"][d["stage_id"]] = kept
    state["events"][eid] = ["stage", d["stage_id"]]


def _add_transfer(c: dict[str, Any], stage_id: str, basis: str, count: int | None, sign: int) -> None:
    if basis == "undisclosed":
        c["undisclosed"] += sign
    else:
        c[basis] += sign * (count or 0)
    n = c["stages"].get(stage_id, 0) + sign
    if n > 0:
        c["stages"][stage_id] = n
    else:
        c["stages"].pop(stage_id, None)


def _claim(state: dict[str, Any], d: dict[str, Any], eid: str) -> None:
    cid = d.get("commitment_id")
    if cid is not None and cid not in state["commitments"]:
        cid = None
    if cid is not None:
        state["commitments"][cid]["claims"].append(d["claim_id"])
    state["claims"][d["claim_id"]] = cid
    state["events"][eid] = ["claim", d["claim_id"]]


def _accusation(state: dict[str, Any], d: dict[str, Any], eid: str) -> None:
    state["accusations"][d["accusation_id"]] = {
        "accuser": d["accuser"], "accused": d["accused"], "commitment_id": d.get("commitment_id"),
        "resolved_by": None, "outcome": None,
    }
    state["events"][eid] = ["accusation", d["accusation_id"]]


def _resolution(state: dict[str, Any], d: dict[str, Any], eid: str) -> None:
    accusation = state["accusations"].get(d["accusation_id"])
    if accusation is not None and accusation["resolved_by"] is None:
        accusation["resolved_by"] = eid
        accusation["outcome"] = d["outcome"]
        state["events"][eid] = ["resolution", d["accusation_id"]]


def _declaration(state: dict[str, Any], d: dict[str, Any], eid: str) -> None:
    commitment = state["commitments"].get(d["commitment_id"])
    if commitment is not None:
        commitment["declared"][eid] = list(d["declared_by"])
        state["events"][eid] = ["declaration", d["commitment_id"]]


def _correction(state: dict[str, Any], d: dict[str, Any], eid: str) -> None:
    target = state["events"].pop(d["event_id"], None)
    if target is None:
        return
    kind, key = target
    commitments = state["commitments"]
    if kind == "commitment":
        commitments.pop(key, None)
    elif kind == "stage":
        for cid, basis, count in state["stages"].pop(key, []):
            if cid in commitments:
                _add_transfer(commitments[cid], key, basis, count, -1)
    elif kind == "claim":
        cid = state["claims"].pop(key, None)
        if cid in commitments:
            commitments[cid]["claims"].remove(key)
    elif kind == "accusation":
        state["accusations"].pop(key, None)
    elif kind == "resolution":
        accusation = state["accusations"].get(key)
        if accusation is not None and accusation["resolved_by"] == d["event_id"]:
            accusation["resolved_by"] = None
            accusation["outcome"] = None
    elif kind == "declaration" and key in commitments:
        commitments[key]["declared"].pop(d["event_id"], None)


_HANDLERS = {
    "AgreementConcluded": _concluded,
    "CommitmentMade": _commitment,
    "StageCompleted": _stage,
    "ProgressClaimed": _claim,
    "AccusationMade": _accusation,
    "AccusationResolved": _resolution,
    "CommitmentFulfilmentDeclared": _declaration,
    "RecordCorrected": _correction,
}


def status(c: dict[str, Any], evaluated_on: str) -> str:
    """fulfilled > overdue > in_progress > pending, as API.md orders them."""
    if any(c["beneficiary"] in parties for parties in c["declared"].values()):
        return "fulfilled"
    if c["qualifier"] in COUNTED_QUALIFIERS and c["value"] is not None and c["reported"] >= c["value"]:
        return "fulfilled"
    if c["due_by"] is not None and c["due_by"] < evaluated_on:
        return "overdue"
    if c["stages"]:
        return "in_progress"
    return "pending"


def render(state: dict[str, Any], evaluated_on: str) -> dict[str, Any]:
    """The `parties` object of the compliance answer."""
    if not state["concluded"]:
        return {}
    open_by_commitment: dict[str, list[str]] = {}
    counts = {code: {"made": 0, "received": 0, "open": 0} for code in state["parties"]}
    for aid, a in state["accusations"].items():
        is_open = a["resolved_by"] is None
        if a["accuser"] in counts:
            counts[a["accuser"]]["made"] += 1
        if a["accused"] in counts:
            counts[a["accused"]]["received"] += 1
            if is_open:
                counts[a["accused"]]["open"] += 1
        cid = a["commitment_id"]
        if is_open and cid is not None:
            c = state["commitments"].get(cid)
            if c is not None and c["obligor"] == a["accused"]:
                open_by_commitment.setdefault(cid, []).append(aid)
    parties: dict[str, Any] = {}
    for code, name in state["parties"].items():
        parties[code] = {
            "party": code, "name": name,
            "summary": {"commitments": 0, "fulfilled": 0, "in_progress": 0, "pending": 0, "overdue": 0,
                        "accusations_made": counts[code]["made"],
                        "accusations_received": counts[code]["received"],
                        "accusations_open_against": counts[code]["open"]},
            "commitments": [],
        }
    for cid, c in state["commitments"].items():
        party = parties.get(c["obligor"])
        if party is None:
            continue
        st = status(c, evaluated_on)
        open_ids = open_by_commitment.get(cid, [])
        party["summary"]["commitments"] += 1
        party["summary"][st] += 1
        party["commitments"].append({
            "commitment_id": cid, "beneficiary": c["beneficiary"], "action": c["action"],
            "subject": c["subject"], "target": {"qualifier": c["qualifier"], "value": c["value"]},
            "due_by": c["due_by"],
            "delivered": {"reported": c["reported"], "approximate": c["approximate"],
                          "undisclosed_transfers": c["undisclosed"]},
            "status": st, "disputed": bool(open_ids), "stages": list(c["stages"]),
            "claims": list(c["claims"]), "open_accusations": open_ids,
        })
    return parties
