"""RFC 9457 problem+json answers and the handlers that produce them."""
from __future__ import annotations

import json
import logging
import traceback
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.logs import request_id
from domain.errors import DomainError

log = logging.getLogger("pactwatch.errors")

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
# Answers other than HTML pages load nothing and are framed nowhere.
API_CSP = "default-src 'none'; frame-ancestors 'none'"


class Problem(Exception):
    """An HTTP error with a problem+json body."""

    def __init__(self, status: int, detail: str, errors: list[dict[str, str]] | None = None,
                 headers: dict[str, str] | None = None, title: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}
        self.title = title or HTTPStatus(status).phrase


def problem_response(status: int, detail: str, errors: list[dict[str, str]] | None = None,
                     headers: dict[str, str] | None = None, title: str | None = None) -> Response:
    body: dict[str, Any] = {"type": "about:blank", "title": title or HTTPStatus(status).phrase,
                            "status": status, "detail": detail}
    if errors is not None:
        body["errors"] = errors
    return Response(json.dumps(body, ensure_ascii=False), status_code=status, headers=headers,
                    media_type="application/problem+json")


def validation_problem(errors: list[dict[str, str]]) -> Problem:
    first = errors[0]
    where = first["pointer"] or "the body"
    return Problem(422, f"{where}: {first['detail']}", errors)


def pointer(loc: tuple[Any, ...] | list[Any]) -> str:
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in loc)


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into problem+json."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> Response:
        return problem_response(exc.status, exc.detail, exc.errors, exc.headers, exc.title)

    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> Response:
        errors = [{"pointer": exc.pointer, "detail": exc.detail}] if exc.status == 422 else None
        return problem_response(exc.status, exc.detail, errors)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = []
        for err in exc.errors():
            loc = list(err.get("loc", ()))
            where = loc[0] if loc else ""
            if where == "query" and len(loc) > 1:
                ptr = str(loc[1])
            elif where == "body":
                ptr = pointer(loc[1:])
            else:
                ptr = pointer(loc[1:]) if len(loc) > 1 else ""
            errors.append({"pointer": ptr, "detail": err.get("msg", "invalid")})
        errors = errors or [{"pointer": "", "detail": "invalid request"}]
        return problem_response(422, f"{errors[0]['pointer'] or 'request'}: {errors[0]['detail']}", errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        return problem_response(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        # The type and the innermost frame only: no traceback, no message (it may hold SQL parameters).
        frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
        where = f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno}" if frame else "?"
        log.error("unhandled %s at %s on %s %s", type(exc).__name__, where, request.method, request.url.path)
        # This answer leaves through Starlette's outermost middleware, past ours: add the headers here.
        headers = {**SECURITY_HEADERS, "Content-Security-Policy": API_CSP}
        rid = request_id.get()
        if rid is not None:
            headers["X-Request-ID"] = rid
        return problem_response(500, "an internal error occurred; it has been logged", headers=headers)
