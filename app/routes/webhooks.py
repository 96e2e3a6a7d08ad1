"""/v1/webhooks: subscriptions, their delivery log, replay, secret rotation and test pings (admin only)."""
from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import Field, StringConstraints, model_validator
from starlette.concurrency import run_in_threadpool

from app.body import validate
from app.deps import AdminDep, RuntimeDep, not_found
from app.problems import validation_problem
from app.routes import params
from app.routes.agreements import json_response, read_body
from app.schemas import Slug, Strict, Text
from app.webhooks import ssrf
from app.webhooks.service import Webhooks
from domain.values import EVENT_TYPES, MAX_SAFE_INTEGER

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])

Url = Annotated[str, StringConstraints(min_length=1, max_length=2048)]
EventType = Literal[EVENT_TYPES]  # type: ignore[valid-type]
EventTypes = Annotated[list[EventType], Field(min_length=1, max_length=len(EVENT_TYPES) * 4)]


class NewWebhook(Strict):
    url: Url
    event_types: EventTypes | None = None
    agreement_id: Slug | None = None
    description: Text | None = None


class WebhookChanges(Strict):
    url: Url | None = None
    event_types: EventTypes | None = None
    agreement_id: Slug | None = None
    description: Text | None = None
    active: bool | None = None

    @model_validator(mode="after")
    def _not_null(self) -> WebhookChanges:
        for name in ("url", "active"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} may be omitted but not null")
        return self


class Replay(Strict):
    from_position: Annotated[int, Field(ge=0, le=MAX_SAFE_INTEGER)]


def _body_schema(model: type[Strict]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": model.model_json_schema(by_alias=True)}}}}


def _webhooks(runtime: RuntimeDep) -> Webhooks:
    return runtime.webhooks


def _checked_url(webhooks: Webhooks, url: str) -> None:
    try:
        ssrf.check_syntax(url, webhooks.sender.allow_private, webhooks.sender.resolve)
    except ssrf.ForbiddenTarget as exc:
        raise validation_problem([{"pointer": "/url", "detail": str(exc)}]) from None


def _fields(model: Strict) -> dict[str, Any]:
    values = {name: getattr(model, name) for name in model.model_fields_set}
    if values.get("event_types") is not None:
        values["event_types"] = list(dict.fromkeys(values["event_types"]))
    return values


def _exists(webhooks: Webhooks, webhook_id: str) -> dict[str, Any]:
    found = webhooks.subscriptions.get(webhook_id)
    if found is None:
        raise not_found(f"no webhook {webhook_id!r}")
    return found


@router.post("", status_code=201, openapi_extra=_body_schema(NewWebhook))
async def create_webhook(runtime: RuntimeDep, request: Request, _: AdminDep) -> Response:
    """Subscribe a URL to the events recorded from now on; the answer shows the signing secret, once."""
    body = validate(NewWebhook, await read_body(request))
    webhooks = _webhooks(runtime)

    def create() -> dict[str, Any]:
        _checked_url(webhooks, body.url)
        fields = _fields(body)
        return webhooks.subscriptions.create(body.url, fields.get("event_types"), body.agreement_id,
                                             body.description)

    created = await run_in_threadpool(create)
    return json_response(created, 201, {"Location": f"/v1/webhooks/{created['id']}"})


@router.get("")
def list_webhooks(runtime: RuntimeDep, _: AdminDep) -> Response:
    """Every subscription, oldest first (never their secrets)."""
    return json_response({"items": _webhooks(runtime).subscriptions.list()})


@router.get("/{webhook_id}")
def get_webhook(webhook_id: str, runtime: RuntimeDep, _: AdminDep) -> Response:
    """One subscription, with `active` and `disabled_reason`."""
    return json_response(_exists(_webhooks(runtime), webhook_id))


@router.patch("/{webhook_id}", openapi_extra=_body_schema(WebhookChanges))
async def change_webhook(webhook_id: str, runtime: RuntimeDep, request: Request, _: AdminDep) -> Response:
    """Change a subscription; `{"active": true}` resumes a disabled one from its first undelivered event."""
    webhooks = _webhooks(runtime)
    raw = await read_body(request)

    def change() -> dict[str, Any]:
        _exists(webhooks, webhook_id)
        changes = _fields(validate(WebhookChanges, raw))
        if "url" in changes:
            _checked_url(webhooks, changes["url"])
        changed = webhooks.subscriptions.change(webhook_id, changes)
        if changed is None:
            raise not_found(f"no webhook {webhook_id!r}")
        webhooks.wake()
        return changed

    return json_response(await run_in_threadpool(change))


@router.delete("/{webhook_id}", status_code=204)
def delete_webhook(webhook_id: str, runtime: RuntimeDep, _: AdminDep) -> Response:
    """Delete a subscription and its delivery log."""
    if not _webhooks(runtime).subscriptions.delete(webhook_id):
        raise not_found(f"no webhook {webhook_id!r}")
    return Response(status_code=204)


@router.get("/{webhook_id}/deliveries")
def list_deliveries(webhook_id: str, runtime: RuntimeDep, _: AdminDep,
                    limit: Annotated[str | None, Query()] = None,
                    before: Annotated[str | None, Query()] = None) -> Response:
    """Delivery attempts, newest first; `before=ID` pages to older ones."""
    webhooks = _webhooks(runtime)
    _exists(webhooks, webhook_id)
    size = params.parse_int("limit", limit, 1, 1000) or 100
    older_than = params.parse_int("before", before, 1, 2**63 - 1)
    return json_response({"items": webhooks.subscriptions.deliveries(webhook_id, size, older_than)})


@router.post("/{webhook_id}/replay", status_code=202, openapi_extra=_body_schema(Replay))
async def replay_webhook(webhook_id: str, runtime: RuntimeDep, request: Request, _: AdminDep) -> Response:
    """Send every matching event from `from_position` on again, in order (the cursor only moves back)."""
    webhooks = _webhooks(runtime)
    raw = await read_body(request)

    def replay() -> dict[str, Any]:
        _exists(webhooks, webhook_id)
        body = validate(Replay, raw)
        moved = webhooks.subscriptions.replay(webhook_id, body.from_position)
        if moved is None:
            raise not_found(f"no webhook {webhook_id!r}")
        webhooks.wake()
        return moved

    return json_response(await run_in_threadpool(replay), 202)


@router.post("/{webhook_id}/rotate-secret")
def rotate_secret(webhook_id: str, runtime: RuntimeDep, _: AdminDep) -> Response:
    """A new signing secret, shown once; the old one also signs for 24 hours."""
    secret = _webhooks(runtime).subscriptions.rotate_secret(webhook_id)
    if secret is None:
        raise not_found(f"no webhook {webhook_id!r}")
    return json_response({"secret": secret})


@router.post("/{webhook_id}/test", status_code=202)
def test_webhook(webhook_id: str, runtime: RuntimeDep, _: AdminDep) -> Response:
    """Send a signed ping outside the log and answer with the logged attempt."""
    attempt = _webhooks(runtime).ping(webhook_id)
    if attempt is None:
        raise not_found(f"no webhook {webhook_id!r}")
    return json_response(attempt, 202)
