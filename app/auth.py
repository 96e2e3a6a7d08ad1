"""Who is calling: bearer tokens, roles, and what anonymous callers may read."""
from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from app.problems import Problem

ROLES = {"reader": 1, "recorder": 2, "admin": 3}
CHALLENGE = {"WWW-Authenticate": "Bearer"}


@dataclass(frozen=True)
class Principal:
    name: str
    role: str

    def can(self, role: str) -> bool:
        return ROLES[self.role] >= ROLES[role]


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def bearer(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer` header; 401 for any other scheme."""
    if authorization is None:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem(401, "use Authorization: Bearer <token>", headers=CHALLENGE)
    return token.strip()


def is_admin_token(token: str, admin_token: str | None) -> bool:
    return bool(admin_token) and hmac.compare_digest(token_hash(token), token_hash(admin_token or ""))


def require(principal: Principal | None, role: str) -> Principal:
    if principal is None:
        raise Problem(401, "this request needs a bearer token", headers=CHALLENGE)
    if not principal.can(role):
        raise Problem(403, f"this request needs the role {role!r}; the key {principal.name!r} is a {principal.role}")
    return principal
