"""The HTML dashboard: every agreement at a glance, and each side's compliance on any day."""
from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import jinja2
from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, HTMLResponse, Response

from app.deps import PublicRead, RuntimeDep
from app.problems import Problem
from app.queries import Reader
from app.routes import params
from domain.errors import AgreementNotFound
from domain.values import COUNTED_QUALIFIERS
from projections.replay import Filters

HERE = Path(__file__).parent
STATIC = HERE / "static"
STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".svg": "image/svg+xml"}
TIMELINE_SHOWN = 200
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")

STATUSES = {
    "fulfilled": ("Fulfilled", "✓"),
    "in_progress": ("In progress", "◐"),
    "pending": ("Pending", "○"),
    "overdue": ("Overdue", "!"),
}
STANCES = {"denied": "Denied", "acknowledged": "Acknowledged", "disputed_facts": "Disputed the facts"}
OUTCOMES = {"upheld": "Upheld", "rejected": "Rejected", "withdrawn": "Withdrawn"}
EVENT_LABELS = {
    "AgreementConcluded": "Agreement concluded",
    "CommitmentMade": "Commitment made",
    "StageCompleted": "Stage completed",
    "ProgressClaimed": "Progress claimed",
    "AccusationMade": "Accusation made",
    "AccusationAnswered": "Accusation answered",
    "AccusationResolved": "Accusation resolved",
    "CommitmentFulfilmentDeclared": "Fulfilment declared",
    "RecordCorrected": "Record corrected",
}

router = APIRouter(include_in_schema=False)


# Formatting for people.

def number(value: int | None) -> str:
    """6000 -> "6,000"; None -> "–"."""
    return "–" if value is None else f"{value:,}"


def human_date(value: str | None) -> str:
    """"2025-06-09" -> "9 Jun 2025"."""
    if not value:
        return ""
    day = date.fromisoformat(value[:10])
    return f"{day.day} {day:%b %Y}"


def safe_url(value: Any) -> str | None:
    """The URL when it is http(s) with a host, else None: sources are untrusted."""
    if not isinstance(value, str):
        return None
    try:
        parts = urlsplit(value.strip())
    except ValueError:
        return None
    return value.strip() if parts.scheme.lower() in ("http", "https") and parts.netloc else None


def target_text(target: dict[str, Any]) -> str:
    value = target.get("value")
    return {"exact": f"exactly {number(value)}", "at_least": f"at least {number(value)}", "all": "all",
            "unspecified": "an unspecified number"}.get(target["qualifier"], target["qualifier"])


def humanize(value: str) -> str:
    text = value.replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(number=number, human_date=human_date, safe_url=safe_url, humanize=humanize)
    env.globals.update(STATUSES=STATUSES, STANCES=STANCES, OUTCOMES=OUTCOMES, EVENT_LABELS=EVENT_LABELS)
    return env


TEMPLATES = _environment()


def render(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = TEMPLATES.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status, headers={"Content-Security-Policy": CSP})


# What the pages show.

def one_line_state(parties: dict[str, Any]) -> str:
    """"Russia 2 of 3 fulfilled · Ukraine 1 of 2, 1 overdue"."""
    parts = []
    for party in parties.values():
        s = party["summary"]
        if s["commitments"] == 0:
            parts.append(f"{party['name']} no commitments")
            continue
        text = f"{party['name']} {number(s['fulfilled'])} of {number(s['commitments'])}"
        if not parts:
            text += " fulfilled"
        if s["overdue"]:
            text += f", {number(s['overdue'])} overdue"
        parts.append(text)
    return " · ".join(parts)


def index_view(reader: Reader) -> list[dict[str, Any]]:
    """Every agreement with its parties and one-line state."""
    rows = []
    for item in reader.agreements():
        parties = reader.compliance(item["id"], Filters())["parties"]
        rows.append({**item, "state": one_line_state(parties),
                     "open_accusations": sum(p["summary"]["accusations_open_against"] for p in parties.values())})
    return rows


def _live_by_position(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted((i for i in items if not i["retracted"] and i["type"] != "RecordCorrected"),
                  key=lambda i: i["position"])


def _record_of(item: dict[str, Any]) -> dict[str, Any]:
    return {**item["data"], "occurred_on": item["occurred_on"], "source": item["source"]}


def accusations_view(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Accusations with their answers and state, from the timeline items a filter kept."""
    accusations: dict[str, dict[str, Any]] = {}
    for item in _live_by_position(items):
        d = item["data"]
        if item["type"] == "AccusationMade":
            accusations[d["accusation_id"]] = {**_record_of(item), "answers": [], "resolution": None}
        elif item["type"] == "AccusationAnswered" and d["accusation_id"] in accusations:
            accusations[d["accusation_id"]]["answers"].append(_record_of(item))
        elif item["type"] == "AccusationResolved" and d["accusation_id"] in accusations:
            accusation = accusations[d["accusation_id"]]
            if accusation["resolution"] is None:
                accusation["resolution"] = _record_of(item)
    return accusations


def _commitment_view(c: dict[str, Any], obligor: str, made: dict[str, Any], names: dict[str, str],
                     accusations: dict[str, Any], claims: dict[str, Any], stages: dict[str, Any]) -> dict[str, Any]:
    target = c["target"]
    delivered = c["delivered"]
    counted = target["qualifier"] in COUNTED_QUALIFIERS and target["value"] is not None
    goal = target["value"] if counted else None
    return {
        **c, "obligor": obligor, "obligor_name": names.get(obligor, obligor),
        "beneficiary_name": names.get(c["beneficiary"], c["beneficiary"]),
        "target_text": target_text(target), "goal": goal,
        "percent": (min(100, round(100 * delivered["reported"] / goal)) if goal else 100) if counted else None,
        "with_approximate": delivered["reported"] + delivered["approximate"],
        "made_on": made.get("occurred_on"), "source": made.get("source"),
        "open": [{"accusation_id": aid, **accusations[aid]} for aid in c["open_accusations"] if aid in accusations],
        "claim_records": [{"claim_id": k, **claims[k]} for k in c["claims"] if k in claims],
        "stage_records": [{"stage_id": k, **stages[k]} for k in c["stages"] if k in stages],
    }


def commitment_rows(parties: dict[str, Any], made: dict[str, dict[str, Any]], names: dict[str, str],
                    accusations: dict[str, Any], claims: dict[str, Any],
                    stages: dict[str, Any]) -> tuple[list[list[list[dict[str, Any]]]], list[list[dict[str, Any]]]]:
    """(reciprocal rows, the rest): each row or the rest holds one list of commitments per party."""
    codes = list(parties)
    found = {c["commitment_id"]: _commitment_view(c, code, made.get(c["commitment_id"], {}), names, accusations,
                                                  claims, stages)
             for code, party in parties.items() for c in party["commitments"]}
    order = {cid: n for n, cid in enumerate(sorted(found, key=lambda k: made.get(k, {}).get("position", 0)))}
    root = {cid: cid for cid in found}

    def find(cid: str) -> str:
        while root[cid] != cid:
            root[cid] = root[root[cid]]
            cid = root[cid]
        return cid

    for cid, view in found.items():
        other = made.get(cid, {}).get("reciprocal_of")
        if other in found:
            a, b = find(cid), find(other)
            if a != b:
                root[max(a, b, key=order.__getitem__)] = min(a, b, key=order.__getitem__)
    groups: dict[str, list[str]] = {}
    for cid in sorted(found, key=order.__getitem__):
        groups.setdefault(find(cid), []).append(cid)
    rows, rest = [], [[] for _ in codes]
    for members in groups.values():
        if len(members) == 1:
            view = found[members[0]]
            rest[codes.index(view["obligor"])].append(view)
            continue
        rows.append([[found[m] for m in members if found[m]["obligor"] == code] for code in codes])
    return rows, rest


def agreement_view(reader: Reader, agreement_id: str, as_of: str | None) -> dict[str, Any]:
    """Everything the agreement page shows, as of a day or now."""
    header = reader.agreement(agreement_id)
    everything = reader.timeline(agreement_id, Filters())
    filters = Filters(as_of=as_of)
    items = reader.timeline(agreement_id, filters) if as_of else everything
    compliance = reader.compliance(agreement_id, filters)
    names = {p["code"]: p["name"] for p in header["parties"]}
    live = _live_by_position(items)
    made = {i["data"]["commitment_id"]: {**_record_of(i), "position": i["position"]}
            for i in live if i["type"] == "CommitmentMade"}
    claims = {i["data"]["claim_id"]: _record_of(i) for i in live if i["type"] == "ProgressClaimed"}
    stages = {i["data"]["stage_id"]: _record_of(i) for i in live if i["type"] == "StageCompleted"}
    accusations = accusations_view(items)
    parties = compliance["parties"]
    rows, rest = commitment_rows(parties, made, names, accusations, claims, stages)
    days = sorted({i["occurred_on"] for i in everything})
    shown = [d for d in days if as_of is None or d <= as_of]
    return {
        "agreement": header, "as_of": as_of, "compliance": compliance, "parties": parties, "names": names,
        "state": one_line_state(parties), "rows": rows, "rest": rest, "accusations": accusations,
        "timeline": items[-TIMELINE_SHOWN:], "timeline_total": len(items),
        "evaluated_on": compliance["evaluated_on"],
        "earlier_day": shown[-2] if len(shown) > 1 else None,
        "later_day": next((d for d in days if d > as_of), None) if as_of else None,
    }


# Routes.

@router.get("/", response_class=HTMLResponse)
def dashboard_index(runtime: RuntimeDep, _: PublicRead) -> Response:
    """Every agreement with its parties and each side's compliance in one line."""
    return render("index.html", agreements=index_view(runtime.reader))


@router.get("/agreements/{agreement_id}", response_class=HTMLResponse)
def dashboard_agreement(agreement_id: str, runtime: RuntimeDep, _: PublicRead,
                        as_of: Annotated[str | None, Query()] = None) -> Response:
    """One agreement: the parties side by side, the accusations and the timeline, as of a day."""
    try:
        try:
            day = params.parse_date("as_of", as_of or None)
        except Problem:
            runtime.reader.agreement(agreement_id)
            return render("error.html", 422, title="That date cannot be shown", agreement_id=agreement_id,
                          message=f"“{as_of[:40]}” is not a date. Pick a real calendar day, written YYYY-MM-DD.")
        return render("agreement.html", **agreement_view(runtime.reader, agreement_id, day))
    except AgreementNotFound:
        return render("error.html", 404, title="Agreement not found", agreement_id=None,
                      message=f"There is no agreement “{agreement_id[:80]}” on record.")


@router.get("/static/{name}")
def dashboard_static(name: str) -> Response:
    """The dashboard's stylesheet and script."""
    path = STATIC / name
    kind = STATIC_TYPES.get(path.suffix)
    if kind is None or "/" in name or name.startswith(".") or not path.is_file():
        raise Problem(404, f"no static file {name!r}")
    return FileResponse(path, media_type=kind, headers={"Cache-Control": "public, max-age=300"})
