"""Strict parsing of query parameters and conditional headers."""
from __future__ import annotations

from datetime import date, datetime, timezone

from app.problems import Problem, validation_problem
from projections.envelope import format_recorded_at
from projections.replay import Filters


def _bad(name: str, detail: str) -> Problem:
    return validation_problem([{"pointer": name, "detail": detail}])


def parse_date(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    if len(value) != 10:
        raise _bad(name, "must be a date YYYY-MM-DD")
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise _bad(name, "must be a real date YYYY-MM-DD") from None


def shown_utc(value: str) -> str:
    """A valid `parse_datetime` input in UTC `Z` form, keeping its fraction of a second only if it had one."""
    full = parse_datetime("known_at", value) or ""
    has_fraction = "." in value[19:] or "," in value[19:]
    return full if has_fraction else full[:19] + "Z"


def parse_datetime(name: str, value: str | None) -> str | None:
    """An RFC 3339 datetime with a zone, as UTC `YYYY-MM-DDTHH:MM:SS.ffffffZ`."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _bad(name, "must be an RFC 3339 datetime with a zone") from None
    if parsed.tzinfo is None or len(value) < 19 or value[10] not in "Tt ":
        raise _bad(name, "must be an RFC 3339 datetime with a zone")
    try:
        utc = parsed.astimezone(timezone.utc)
    except OverflowError:
        raise _bad(name, "is outside the range of datetimes once in UTC") from None
    return format_recorded_at(utc)


def parse_int(name: str, value: str | None, low: int, high: int) -> int | None:
    if value is None:
        return None
    if not value.isascii() or not value.isdigit() or len(value) > 19:
        raise _bad(name, f"must be an integer from {low} to {high}")
    number = int(value)
    if not low <= number <= high:
        raise _bad(name, f"must be an integer from {low} to {high}")
    return number


def filters(as_of: str | None, known_at: str | None, version: str | None) -> Filters:
    parsed = parse_datetime("known_at", known_at)
    return Filters(as_of=parse_date("as_of", as_of), known_at=parsed,
                   version=parse_int("version", version, 1, 2**53 - 1),
                   known_at_shown=shown_utc(known_at) if known_at is not None else None)


def if_match(value: str | None) -> tuple[bool, int | None]:
    """(present, expected version); `*` is present with no version; unparsable never matches."""
    if value is None:
        return False, None
    value = value.strip()
    if value == "*":
        return True, None
    tag = value.split(",")[0].strip()
    if tag.startswith("W/"):
        tag = tag[2:]
    tag = tag.strip('"')
    return True, int(tag) if tag.isdigit() and len(tag) < 17 else -1
