"""API keys: create, list, revoke, and look up a token by its hash."""
from __future__ import annotations

import secrets
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Engine

from app.auth import ROLES, Principal, token_hash
from projections.schema import api_keys

RESERVED = ("admin",)


class KeyError_(ValueError):
    """A key command that cannot be carried out."""


class Keys:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, name: str, role: str) -> str:
        """Store a new key and return its token (shown once)."""
        if role not in ROLES:
            raise KeyError_(f"role must be one of {', '.join(ROLES)}")
        if name in RESERVED:
            raise KeyError_(f"the name {name!r} is reserved")
        if not name or len(name) > 64:
            raise KeyError_("a name has 1 to 64 characters")
        token = "pw_" + secrets.token_urlsafe(32)
        with self.engine.begin() as conn:
            if conn.execute(select(api_keys.c.name).where(api_keys.c.name == name)).first():
                raise KeyError_(f"a key named {name!r} exists already")
            conn.execute(insert(api_keys).values(name=name, role=role, token_hash=token_hash(token),
                                                 created_at=_now(), revoked_at=None))
        return token

    def list(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(api_keys.c.name, api_keys.c.role, api_keys.c.created_at,
                                       api_keys.c.revoked_at).order_by(api_keys.c.created_at)).all()
        return [dict(r._mapping) for r in rows]

    def revoke(self, name: str) -> None:
        with self.engine.begin() as conn:
            done = conn.execute(update(api_keys).where(api_keys.c.name == name, api_keys.c.revoked_at.is_(None))
                                .values(revoked_at=_now()))
        if done.rowcount == 0:
            raise KeyError_(f"no active key named {name!r}")

    def lookup(self, token: str) -> Principal | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(api_keys.c.name, api_keys.c.role, api_keys.c.revoked_at)
                               .where(api_keys.c.token_hash == token_hash(token))).first()
        if row is None or row.revoked_at is not None:
            return None
        return Principal(row.name, row.role)


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
