"""Structured logs: one JSON object per line, each with the request id of the request it serves."""
from __future__ import annotations

import logging
import re
import sys
import uuid
from contextvars import ContextVar
from typing import TextIO

from pythonjsonlogger.json import JsonFormatter

REQUEST_ID_HEADER = "X-Request-ID"
request_id: ContextVar[str | None] = ContextVar("pactwatch_request_id", default=None)

_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:@+=/-]{1,128}$")
# Tokens and passwords that must never reach a log line: bearer tokens, API-key
# tokens, webhook secrets, and the password part of a database URL.
_SECRETS = [
    (re.compile(r"(?i)(bearer\s+)[^\s\"',;]+"), r"\1[redacted]"),
    (re.compile(r"\bpw_[A-Za-z0-9_-]{8,}"), "pw_[redacted]"),
    (re.compile(r"\bwhsec_[A-Za-z0-9+/=_-]+"), "whsec_[redacted]"),
    (re.compile(r"(://[^:/@\s]+:)[^@\s]+@"), r"\1[redacted]@"),
]
_LIBRARY_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "alembic")
# httpx logs every request's full URL at INFO; a webhook URL may carry a credential.
_QUIET_LOGGERS = ("httpx", "httpcore")


def accept_request_id(value: str | None) -> str:
    """The client's X-Request-ID when it is a sane token, else a new one."""
    if value and _VALID_REQUEST_ID.match(value):
        return value
    return uuid.uuid4().hex


def redact(text: str) -> str:
    """Text with every token, secret and password replaced by a marker."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


class ContextFilter(logging.Filter):
    """Adds the current request id and scrubs secrets from the message and its arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id.get()
        record.__dict__.pop("color_message", None)  # uvicorn's copy of the message with terminal colours
        message = record.getMessage()
        clean = redact(message)
        if clean != message or record.args:
            record.msg, record.args = clean, None
        return True


def json_formatter() -> logging.Formatter:
    return JsonFormatter("%(levelname)s %(name)s %(message)s %(request_id)s", timestamp="ts",
                         rename_fields={"levelname": "level", "name": "logger"})


def handler(stream: TextIO, json_lines: bool = True) -> logging.Handler:
    """A handler that writes scrubbed records carrying their request id, as JSON lines or plain text."""
    out = logging.StreamHandler(stream)
    out.addFilter(ContextFilter())
    out.setFormatter(json_formatter() if json_lines else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    return out


def configure(json_lines: bool = True, level: int = logging.INFO) -> None:
    """Send every log record to stderr, as JSON lines unless told otherwise (idempotent)."""
    handler_ = handler(sys.stderr, json_lines)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_pactwatch", False)]:
        root.removeHandler(old)
    handler_._pactwatch = True  # type: ignore[attr-defined]
    root.addHandler(handler_)
    root.setLevel(level)
    for name in _LIBRARY_LOGGERS:
        library = logging.getLogger(name)
        library.handlers.clear()
        library.propagate = True
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
