"""/v1/audit and /v1/admin: tamper evidence and rebuilds with proof."""
from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from app.deps import AdminDep, PublicRead, ReaderDep, RuntimeDep
from app.routes.agreements import json_response
from projections import ledger
from projections.rebuild import rebuild

router = APIRouter(prefix="/v1", tags=["audit"])


@router.get("/audit/head")
def audit_head(runtime: RuntimeDep, _: PublicRead) -> Response:
    """Position and hash of the newest event (zeros for an empty store)."""
    with runtime.engine.connect() as conn:
        return json_response(ledger.current_head(conn))


@router.get("/audit/verify")
def audit_verify(runtime: RuntimeDep, _: ReaderDep) -> Response:
    """Recompute every hash from what is stored and name the first bad position."""
    with runtime.engine.connect() as conn:
        return json_response(ledger.verify(conn))


@router.post("/admin/projections/rebuild")
def rebuild_projections(runtime: RuntimeDep, _: AdminDep) -> Response:
    """Rebuild every read model from history, compare with the live ones, switch atomically."""
    return json_response(rebuild(runtime.read_models))
