"""The eventsourcing Application: one method per use case, one save per call."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError, Recording

from domain.agreement import Agreement
from domain.errors import AgreementNotFound, AlreadyExists, VersionMismatch
from domain.values import agreement_uuid

Body = Callable[[], tuple[dict[str, Any], dict[str, Any]]]

COMMANDS = {
    "commitment": "make_commitment",
    "stage": "record_stage",
    "claim": "claim_progress",
    "accusation": "make_accusation",
    "response": "answer_accusation",
    "resolution": "resolve_accusation",
    "fulfilment": "declare_fulfilment",
    "correction": "correct_record",
}


class Pactwatch(Application):
    """Records agreements and everything said about them as events."""

    name = "pactwatch"
    snapshotting_intervals = {Agreement: 1000}

    def conclude_agreement(self, body: Body, meta: dict[str, Any]) -> list[Recording]:
        """Record a new agreement; its id must be new to the store."""
        data, source = body()
        agreement = Agreement.conclude(agreement_uuid(data["id"]), data, source, meta)
        if self.agreement_exists(data["id"]):
            raise AlreadyExists(f"agreement {data['id']!r} already exists", "/id")
        try:
            return self.save(agreement)
        except IntegrityError as exc:
            raise AlreadyExists(f"agreement {data['id']!r} already exists", "/id") from exc

    def record(self, agreement_id: str, kind: str, body: Body, meta: dict[str, Any], *,
               expected_version: int | None = None, accusation_id: str | None = None,
               commitment_id: str | None = None) -> list[Recording]:
        """Record one event of `kind` (a key of COMMANDS) in an existing agreement.

        Checks run in the contract's order: unknown agreement or path id (404),
        stale version (412), then the body (422) and its rules (422, then 409).
        """
        agreement = self.get_agreement(agreement_id)
        if accusation_id is not None:
            agreement.require_live_accusation(accusation_id)
        if commitment_id is not None:
            agreement.require_live_commitment(commitment_id)
        if expected_version is not None and agreement.version != expected_version:
            raise VersionMismatch(f"agreement {agreement_id!r} is at version {agreement.version}, "
                                  f"not {expected_version}")
        data, source = body()
        getattr(agreement, COMMANDS[kind])(data, source, meta)
        return self.save(agreement)

    def get_agreement(self, agreement_id: str) -> Agreement:
        """The agreement as of its latest event."""
        try:
            return self.repository.get(agreement_uuid(agreement_id))
        except AggregateNotFoundError as exc:
            raise AgreementNotFound(agreement_id) from exc

    def agreement_exists(self, agreement_id: str) -> bool:
        return bool(self.recorder.select_events(agreement_uuid(agreement_id), limit=1))
