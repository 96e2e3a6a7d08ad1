"""Stored event -> envelope (API.md), and the canonical hash of an envelope."""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Any

ZERO_HASH = "0" * 64


def event_type(topic: str) -> str:
    """`domain.agreement:Agreement.CommitmentMade` -> `CommitmentMade`."""
    return topic.rsplit(".", 1)[-1].rsplit(":", 1)[-1]


def format_recorded_at(value: datetime | str) -> str:
    """UTC `YYYY-MM-DDTHH:MM:SS.ffffffZ`, whatever the stored form."""
    if isinstance(value, str):
        if value.endswith("+00:00"):
            if len(value) == 32:
                return value[:26] + "Z"
            if len(value) == 25:
                return value[:19] + ".000000Z"
        value = datetime.fromisoformat(value)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def build(position: int, version: int, topic: str, state: bytes | str | dict[str, Any],
          prev_hash: str | None = None, hash_: str | None = None) -> dict[str, Any]:
    """The envelope of one stored event, its keys in the contract's order."""
    if isinstance(state, (bytes, bytearray, memoryview)):
        state = json.loads(bytes(state).decode("utf-8"))
    elif isinstance(state, str):
        state = json.loads(state)
    stamp = state["timestamp"]
    if isinstance(stamp, dict):
        stamp = stamp["_data_"]
    return {
        "position": position,
        "id": state["event_id"],
        "agreement_id": state["agreement_id"],
        "type": event_type(topic),
        "version": version,
        "recorded_at": format_recorded_at(stamp),
        "occurred_on": state["occurred_on"],
        "recorded_by": state["recorded_by"],
        "source": state["source"],
        "data": state["data"],
        "prev_hash": prev_hash,
        "hash": hash_,
    }


def canonical(envelope: dict[str, Any]) -> bytes:
    """The bytes that are hashed: the envelope without position and hash."""
    body = {k: v for k, v in envelope.items() if k not in ("position", "hash")}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def compute_hash(envelope: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(envelope)).hexdigest()
