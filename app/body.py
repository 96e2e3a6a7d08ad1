"""Parse and check a JSON request body before pydantic sees it."""
from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from app.problems import Problem, pointer, validation_problem
from app.schemas import Sourced

MAX_BODY = 1024 * 1024
MAX_DEPTH = 32


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _bad_string(value: str) -> str | None:
    if "\x00" in value:
        return "must not hold U+0000"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must not hold an unpaired surrogate"
    return None


def _walk(value: Any, path: tuple[Any, ...], depth: int) -> None:
    if isinstance(value, (dict, list)) and depth > MAX_DEPTH:
        raise validation_problem([{"pointer": pointer(path), "detail": f"JSON nested deeper than {MAX_DEPTH}"}])
    if isinstance(value, str):
        why = _bad_string(value)
        if why:
            raise validation_problem([{"pointer": pointer(path), "detail": f"string {why}"}])
    elif isinstance(value, dict):
        for key, item in value.items():
            why = _bad_string(key)
            if why:
                raise validation_problem([{"pointer": pointer(path), "detail": f"key {why}"}])
            _walk(item, path + (key,), depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _walk(item, path + (i,), depth + 1)


def load_json(raw: bytes) -> Any:
    """Decode a body: 413 when too large, 422 when not acceptable JSON."""
    if len(raw) > MAX_BODY:
        raise Problem(413, f"the body is larger than {MAX_BODY} bytes")
    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise validation_problem([{"pointer": "", "detail": f"malformed JSON: {exc}"}]) from None
    except RecursionError:
        raise validation_problem([{"pointer": "", "detail": f"JSON nested deeper than {MAX_DEPTH}"}]) from None
    _walk(value, (), 1)
    return value


def validate(model: type[Sourced], raw: bytes) -> Sourced:
    """The body as `model`, or a 413/422 Problem naming every bad field."""
    value = load_json(raw)
    if not isinstance(value, dict):
        raise validation_problem([{"pointer": "", "detail": "the body must be a JSON object"}])
    try:
        return model.model_validate(value, strict=True)
    except ValidationError as exc:
        errors = [{"pointer": pointer(e["loc"]), "detail": e["msg"]} for e in exc.errors()]
        raise validation_problem(errors) from None
