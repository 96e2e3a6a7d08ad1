"""The FastAPI application factory and its lifespan."""
from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app import dashboard, problems
from app.metrics import Metrics, Observability
from app.metrics import router as metrics_router
from app.migrate import upgrade
from app.routes import agreements, audit, log, webhooks
from app.runtime import Runtime, build
from app.schemas import BODIES
from app.settings import Settings

from app.problems import API_CSP, SECURITY_HEADERS
_TEXT = {"type": "string"}
PROBLEM_SCHEMA = {"type": "object", "required": ["type", "title", "status", "detail"], "properties": {
    "type": _TEXT, "title": _TEXT, "status": {"type": "integer"}, "detail": _TEXT,
    "errors": {"type": "array", "items": {"type": "object", "required": ["pointer", "detail"],
                                          "properties": {"pointer": _TEXT, "detail": _TEXT}}}}}
PROBLEM_RESPONSE = {"description": "RFC 9457 problem details", "content": {
    "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}


class SecurityHeaders:
    """Pure ASGI middleware (no BaseHTTPMiddleware: that costs a task and a stream per request)."""

    _headers = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
    _csp = (b"content-security-policy", API_CSP.encode())

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers += [(k, v) for k, v in self._headers if k not in present]
                content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                if self._csp[0] not in present and not content_type.startswith(b"text/html"):
                    headers.append(self._csp)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None, workers: bool = True,
               migrate: bool = True) -> FastAPI:
    """Build the app; the runtime is made in the lifespan unless one is given."""
    settings = settings or (runtime.settings if runtime else Settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = runtime is None
        if owned and migrate:
            upgrade(settings.database_url)
        rt = runtime or build(settings)
        app.state.runtime = rt
        metrics.watch_store(rt.engine, rt.read_models)
        stop_counting = metrics.count_appends(rt.writer)
        if workers:
            rt.start_workers()
        try:
            yield
        finally:
            stop_counting()
            if owned:
                rt.close()
            else:
                rt.stop_workers()

    app = FastAPI(title="pactwatch", version="0.1.0", lifespan=lifespan,
                  description="An event-sourced record of agreements between adversaries and of each "
                              "side's compliance.")
    problems.install(app)
    app.include_router(agreements.router)
    app.include_router(log.router)
    app.include_router(audit.router)
    app.include_router(webhooks.router)
    app.include_router(dashboard.router)
    app.include_router(metrics_router)
    metrics = app.state.metrics = Metrics()

    app.add_middleware(SecurityHeaders)
    app.add_middleware(Observability, metrics=metrics)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in BODIES.values():
            model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}", by_alias=True)
            components.update(model_schema.pop("$defs", {}))
            components[model.__name__] = model_schema
        components["Problem"] = PROBLEM_SCHEMA
        for path_item in schema.get("paths", {}).values():
            for operation in path_item.values():
                responses = operation.setdefault("responses", {})
                if "HTTPValidationError" in json.dumps(responses.get("422", {})):
                    del responses["422"]  # FastAPI's own shape; every error here is problem+json
                responses.setdefault("4XX", PROBLEM_RESPONSE)
        if "#/components/schemas/HTTPValidationError" not in json.dumps(schema):
            components.pop("HTTPValidationError", None)
            components.pop("ValidationError", None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
