"""Standard Webhooks payloads, secrets and signature headers (signed with the standardwebhooks package)."""
from __future__ import annotations

import base64
import json
import secrets
from datetime import datetime, timezone
from functools import lru_cache
from math import floor
from typing import Any

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32


def new_secret() -> str:
    """A fresh `whsec_` secret of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def event_body(envelope: dict[str, Any]) -> str:
    """The payload of one event: `{type, timestamp, data: envelope}`, as the exact text sent."""
    return _dumps({"type": envelope["type"], "timestamp": envelope["recorded_at"], "data": envelope})


def ping_body(now: datetime) -> str:
    """The payload of a test ping, outside the log."""
    stamp = now.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return _dumps({"type": "ping", "timestamp": stamp, "data": {}})


def headers(msg_id: str, body: str, signing_secrets: list[str], now: datetime) -> dict[str, str]:
    """`webhook-id`, `webhook-timestamp` and `webhook-signature` (one signature per secret, space separated)."""
    now = now.astimezone(timezone.utc)
    signatures = " ".join(_webhook(secret).sign(msg_id, now, body) for secret in signing_secrets)
    return {"webhook-id": msg_id, "webhook-timestamp": str(floor(now.timestamp())),
            "webhook-signature": signatures, "content-type": "application/json"}


@lru_cache(maxsize=1024)
def _webhook(secret: str) -> Webhook:
    return Webhook(secret)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
