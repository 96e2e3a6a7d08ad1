"""/v1/events: the global log; /healthz and /readyz."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response
from sqlalchemy import text

from app.deps import PublicRead, RuntimeDep
from app.problems import problem_response, validation_problem
from app.routes import params
from app.routes.agreements import json_response
from domain.values import EVENT_TYPES

router = APIRouter()


@router.get("/v1/events", tags=["log"])
def get_events(runtime: RuntimeDep, _: PublicRead, after: Annotated[str | None, Query()] = None,
               limit: Annotated[str | None, Query()] = None,
               type: Annotated[list[str] | None, Query()] = None) -> Response:  # noqa: A002
    """Envelopes of the global log after a position, ascending."""
    start = params.parse_int("after", after, 0, 2**63 - 1) or 0
    size = params.parse_int("limit", limit, 1, 1000) or 100
    types = type or []
    for t in types:
        if t not in EVENT_TYPES:
            raise validation_problem([{"pointer": "type", "detail": f"unknown event type {t!r}"}])
    return json_response(runtime.reader.log(start, size, types))


@router.get("/healthz", tags=["health"])
def healthz() -> dict[str, str]:
    """200 while the process serves."""
    return {"status": "ok"}


@router.get("/readyz", tags=["health"])
def readyz(runtime: RuntimeDep) -> Response:
    """200 when the store answers."""
    try:
        with runtime.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any failure of the store means not ready
        return problem_response(503, f"the store does not answer: {type(exc).__name__}")
    return json_response({"status": "ready"})
