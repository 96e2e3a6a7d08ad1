"""API keys: create, list, revoke, and look up a token by its hash."""
from __future__ import annotations

import hmac
import secrets
from datetime import datetime, timezone
from typing import Any

import sqlalchemy.exc
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Engine

from app.auth import ROLES, Principal, token_hash
from projections.schema import api_keys

RESERVED = ("admin",)
TOKEN_BYTES = 32


class KeyError_(ValueError):
    """A key command that cannot be carried out."""


class Keys:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, name: str, role: str) -> str:
        """Store a new key and return its token (shown once)."""
        if role not in ROLES:
            raise KeyError_(f"role must be one of {', '.join(ROLES)}")
        if name.lower() in RESERVED:
            raise KeyError_(f"the name {name!r} is reserved")
        if not 0 < len(name) <= 64 or not name.isprintable() or any(c.isspace() for c in name):
            raise KeyError_("a name has 1 to 64 printable characters and no spaces")
        token = "pw_" + secrets.token_urlsafe(TOKEN_BYTES)
        try:
            with self.engine.begin() as conn:
                if conn.execute(select(api_keys.c.name).where(api_keys.c.name == name)).first():
                    raise KeyError_(f"a key named {name!r} exists already")
                conn.execute(insert(api_keys).values(name=name, role=role, token_hash=token_hash(token),
                                                     created_at=_now(), revoked_at=None))
        except sqlalchemy.exc.IntegrityError:
            raise KeyError_(f"a key named {name!r} exists already") from None
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
        """The active key whose token this is, found by the token's hash and compared in constant time."""
        digest = token_hash(token)
        with self.engine.connect() as conn:
            row = conn.execute(select(api_keys.c.name, api_keys.c.role, api_keys.c.token_hash, api_keys.c.revoked_at)
                               .where(api_keys.c.token_hash == digest)).first()
        if row is None or not hmac.compare_digest(row.token_hash, digest) or row.revoked_at is not None:
            return None
        return Principal(row.name, row.role)


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
