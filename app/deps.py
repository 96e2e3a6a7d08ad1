"""FastAPI dependencies as Annotated aliases; the runtime comes from the lifespan."""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app import auth
from app.auth import Principal
from app.problems import Problem
from app.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_principal(request: Request, runtime: RuntimeDep) -> Principal | None:
    """The caller, or None when anonymous; 401 for an unknown or revoked token."""
    token = auth.bearer(request.headers.get("authorization"))
    if token is None:
        return None
    admin = runtime.settings.admin_token.get_secret_value() if runtime.settings.admin_token else None
    if auth.is_admin_token(token, admin):
        return Principal("admin", "admin")
    principal = runtime.keys.lookup(token) if runtime.keys is not None else None
    if principal is None:
        raise Problem(401, "unknown or revoked token", headers=auth.CHALLENGE)
    return principal


PrincipalDep = Annotated[Principal | None, Depends(get_principal)]


def public_reader(runtime: RuntimeDep, principal: PrincipalDep) -> Principal | None:
    if principal is None and runtime.settings.public_read:
        return None
    return auth.require(principal, "reader")


def reader(principal: PrincipalDep) -> Principal:
    return auth.require(principal, "reader")


def recorder(principal: PrincipalDep) -> Principal:
    return auth.require(principal, "recorder")


def admin(principal: PrincipalDep) -> Principal:
    return auth.require(principal, "admin")


PublicRead = Annotated[Principal | None, Depends(public_reader)]
ReaderDep = Annotated[Principal, Depends(reader)]
RecorderDep = Annotated[Principal, Depends(recorder)]
AdminDep = Annotated[Principal, Depends(admin)]


def not_found(what: str) -> Problem:
    return Problem(404, what)
