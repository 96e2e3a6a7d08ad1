"""Domain errors; the HTTP edge turns each into a problem+json status."""
from __future__ import annotations


class DomainError(Exception):
    """A command broke a rule of the domain."""

    status = 422

    def __init__(self, detail: str, pointer: str = "") -> None:
        super().__init__(detail)
        self.detail = detail
        self.pointer = pointer


class RuleViolated(DomainError):
    """A rule of API.md was broken by the body (422)."""


class AlreadyExists(DomainError):
    """An id is already used for its kind, or the state forbids repeating (409)."""

    status = 409


class NotFound(DomainError):
    """The path names nothing live (404)."""

    status = 404


class AgreementNotFound(NotFound):
    def __init__(self, agreement_id: str) -> None:
        super().__init__(f"no agreement {agreement_id!r}")


class VersionMismatch(DomainError):
    """If-Match named a version that is no longer current (412)."""

    status = 412
