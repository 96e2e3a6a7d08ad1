"""/v1/agreements: record agreements and what is said about them; read compliance."""
from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from app import idempotency
from app.deps import PublicRead, RecorderDep, RuntimeDep
from app.problems import Problem
from app.routes import params
from app.body import MAX_BODY
from app.schemas import BODIES
from projections.replay import Filters

router = APIRouter(prefix="/v1", tags=["agreements"])


def json_response(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = value if isinstance(value, bytes) else json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return Response(body, status_code=status, headers=headers, media_type="application/json")


def created(envelope: dict[str, Any]) -> Response:
    return json_response(envelope, 201, {"Location": f"/v1/agreements/{envelope['agreement_id']}",
                                         "ETag": f'"{envelope["version"]}"'})


async def read_body(request: Request) -> bytes:
    """The body, cut at one byte over the limit so that a huge one costs no memory."""
    chunks, size = [], 0
    async for chunk in request.stream():
        if size <= MAX_BODY:
            chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)[: MAX_BODY + 1]


_ENVELOPE_FIELDS = {"position": "integer", "id": "string", "agreement_id": "string", "type": "string",
                    "version": "integer", "recorded_at": "string", "occurred_on": "string",
                    "recorded_by": "string", "source": "object", "data": "object", "prev_hash": "string",
                    "hash": "string"}
_ENVELOPE = {"type": "object", "required": list(_ENVELOPE_FIELDS),
             "properties": {name: {"type": kind} for name, kind in _ENVELOPE_FIELDS.items()}}
_WRITE_HEADERS = [
    {"name": "If-Match", "in": "header", "required": False, "schema": {"type": "string"},
     "description": '`"<version>"` or `*`: 412 unless the agreement is at that version'},
    {"name": "Idempotency-Key", "in": "header", "required": False,
     "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[^\\x00-\\x1f\\x7f]+$"},
     "description": "a retry with the same key and body gets the first 2xx answer again and records nothing"},
]


def _body_schema(kind: str) -> dict[str, Any]:
    """The OpenAPI of a POST that records one event: its body, its headers and its 201."""
    return {
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{BODIES[kind].__name__}"}}}},
        "parameters": _WRITE_HEADERS,
        "responses": {"201": {
            "description": "the recorded event's envelope",
            "headers": {"ETag": {"required": True, "schema": {"type": "string"}},
                        "Location": {"required": True, "schema": {"type": "string"}}},
            "content": {"application/json": {"schema": _ENVELOPE}}}},
    }


async def _record(runtime: RuntimeDep, request: Request, principal: Any, agreement_id: str, kind: str,
                  **path_ids: str) -> Response:
    raw = await read_body(request)
    present, expected = params.if_match(request.headers.get("if-match"))

    def write(hook: Any) -> dict[str, Any]:
        return runtime.writer.record(agreement_id, kind, raw, principal.name,
                                     expected_version=expected if present else None, hook=hook, **path_ids)

    return await idempotency.respond(request, runtime.writer.datastore, principal.name, raw, write, created)


@router.post("/agreements", status_code=201, openapi_extra=_body_schema("agreement"))
async def conclude_agreement(runtime: RuntimeDep, request: Request, principal: RecorderDep) -> Response:
    """Record a new agreement (AgreementConcluded, version 1)."""
    raw = await read_body(request)

    def write(hook: Any) -> dict[str, Any]:
        return runtime.writer.conclude(raw, principal.name, hook=hook)

    return await idempotency.respond(request, runtime.writer.datastore, principal.name, raw, write, created)


@router.post("/agreements/{agreement_id}/commitments", status_code=201, openapi_extra=_body_schema("commitment"))
async def make_commitment(agreement_id: str, runtime: RuntimeDep, request: Request,
                          principal: RecorderDep) -> Response:
    """Record a commitment of one party to another (CommitmentMade)."""
    return await _record(runtime, request, principal, agreement_id, "commitment")


@router.post("/agreements/{agreement_id}/stages", status_code=201, openapi_extra=_body_schema("stage"))
async def record_stage(agreement_id: str, runtime: RuntimeDep, request: Request, principal: RecorderDep) -> Response:
    """Record a completed stage and its transfers (StageCompleted)."""
    return await _record(runtime, request, principal, agreement_id, "stage")


@router.post("/agreements/{agreement_id}/claims", status_code=201, openapi_extra=_body_schema("claim"))
async def claim_progress(agreement_id: str, runtime: RuntimeDep, request: Request, principal: RecorderDep) -> Response:
    """Record a unilateral claim of progress (ProgressClaimed); it is not a transfer."""
    return await _record(runtime, request, principal, agreement_id, "claim")


@router.post("/agreements/{agreement_id}/accusations", status_code=201, openapi_extra=_body_schema("accusation"))
async def make_accusation(agreement_id: str, runtime: RuntimeDep, request: Request,
                          principal: RecorderDep) -> Response:
    """Record an accusation by one party against another (AccusationMade)."""
    return await _record(runtime, request, principal, agreement_id, "accusation")


@router.post("/agreements/{agreement_id}/accusations/{accusation_id}/responses", status_code=201,
             openapi_extra=_body_schema("response"))
async def answer_accusation(agreement_id: str, accusation_id: str, runtime: RuntimeDep, request: Request,
                            principal: RecorderDep) -> Response:
    """Record an answer to an accusation (AccusationAnswered)."""
    return await _record(runtime, request, principal, agreement_id, "response", accusation_id=accusation_id)


@router.post("/agreements/{agreement_id}/accusations/{accusation_id}/resolution", status_code=201,
             openapi_extra=_body_schema("resolution"))
async def resolve_accusation(agreement_id: str, accusation_id: str, runtime: RuntimeDep, request: Request,
                             principal: RecorderDep) -> Response:
    """Record how an accusation was resolved (AccusationResolved)."""
    return await _record(runtime, request, principal, agreement_id, "resolution", accusation_id=accusation_id)


@router.post("/agreements/{agreement_id}/commitments/{commitment_id}/fulfilment", status_code=201,
             openapi_extra=_body_schema("fulfilment"))
async def declare_fulfilment(agreement_id: str, commitment_id: str, runtime: RuntimeDep, request: Request,
                             principal: RecorderDep) -> Response:
    """Record parties declaring a commitment fulfilled (CommitmentFulfilmentDeclared)."""
    return await _record(runtime, request, principal, agreement_id, "fulfilment", commitment_id=commitment_id)


@router.post("/agreements/{agreement_id}/corrections", status_code=201, openapi_extra=_body_schema("correction"))
async def correct_record(agreement_id: str, runtime: RuntimeDep, request: Request, principal: RecorderDep) -> Response:
    """Retract an earlier event of this agreement (RecordCorrected); the retracted event stays in the log."""
    return await _record(runtime, request, principal, agreement_id, "correction")


@router.get("/agreements")
def list_agreements(runtime: RuntimeDep, _: PublicRead) -> Response:
    """Every agreement, in creation order."""
    return json_response({"items": runtime.reader.agreements()})


@router.get("/agreements/{agreement_id}")
def get_agreement(agreement_id: str, runtime: RuntimeDep, _: PublicRead) -> Response:
    """One agreement with its parties, live commitments and version (also in ETag)."""
    agreement = runtime.reader.agreement(agreement_id)
    return json_response(agreement, headers={"ETag": f'"{agreement["version"]}"'})


FilterQuery = Annotated[str | None, Query()]


def _filters(runtime: RuntimeDep, agreement_id: str, as_of: str | None, known_at: str | None,
             version: str | None) -> Filters:
    """The parsed filters; an unknown agreement is 404 before a bad filter is 422 (API.md's order)."""
    try:
        return params.filters(as_of, known_at, version)
    except Problem:
        runtime.reader.require_agreement(agreement_id)
        raise


@router.get("/agreements/{agreement_id}/compliance")
def get_compliance(agreement_id: str, runtime: RuntimeDep, _: PublicRead, as_of: FilterQuery = None,
                   known_at: FilterQuery = None, version: FilterQuery = None) -> Response:
    """Each party's compliance, as of a date, a record time or a version."""
    filters = _filters(runtime, agreement_id, as_of, known_at, version)
    return json_response(runtime.reader.compliance_json(agreement_id, filters))


@router.get("/agreements/{agreement_id}/timeline")
def get_timeline(agreement_id: str, runtime: RuntimeDep, _: PublicRead, as_of: FilterQuery = None,
                 known_at: FilterQuery = None, version: FilterQuery = None) -> Response:
    """The events the filters keep, by when they occurred, each with a one-line summary."""
    filters = _filters(runtime, agreement_id, as_of, known_at, version)
    return json_response({"items": runtime.reader.timeline(agreement_id, filters)})


@router.get("/agreements/{agreement_id}/events")
def get_agreement_events(agreement_id: str, runtime: RuntimeDep, _: PublicRead) -> Response:
    """The agreement's event envelopes by version."""
    return json_response({"items": runtime.reader.agreement_events(agreement_id)})
