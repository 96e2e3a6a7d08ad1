"""The Agreement aggregate: its events and the invariants its commands keep."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from eventsourcing.domain import Aggregate

from domain.errors import AlreadyExists, NotFound, RuleViolated
from domain.values import COUNTED_QUALIFIERS, UNCORRECTABLE


class Agreement(Aggregate):
    """One agreement between parties, with everything recorded about it.

    The state kept here is only what the invariants need: declared parties,
    which ids are used (forever) and which entities are still live.
    """

    class Event(Aggregate.Event):
        event_id: str
        agreement_id: str
        recorded_by: str
        occurred_on: str
        source: dict[str, Any]
        data: dict[str, Any]

        def apply(self, aggregate: Agreement) -> None:
            aggregate.event_types[self.event_id] = [type(self).__name__, self.originator_version]

    class AgreementConcluded(Event, Aggregate.Created):
        def apply(self, aggregate: Agreement) -> None:
            aggregate.slug = self.agreement_id
            aggregate.concluded_on = self.data["concluded_on"]
            aggregate.parties = {p["code"]: p["name"] for p in self.data["parties"]}
            aggregate.commitments = {}
            aggregate.stage_ids = {}
            aggregate.claim_ids = {}
            aggregate.accusations = {}
            aggregate.event_types = {}
            aggregate.created_by_event = {}
            aggregate.retracted = {}
            Agreement.Event.apply(self, aggregate)

    class CommitmentMade(Event):
        def apply(self, aggregate: Agreement) -> None:
            d = self.data
            aggregate.commitments[d["commitment_id"]] = [d["obligor"], d["beneficiary"], True]
            aggregate.created_by_event[self.event_id] = ["commitment", d["commitment_id"]]
            Agreement.Event.apply(self, aggregate)

    class StageCompleted(Event):
        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            """Version 1 stages had no `description`; it reads as null."""
            state["data"].setdefault("description", None)

        def apply(self, aggregate: Agreement) -> None:
            aggregate.stage_ids[self.data["stage_id"]] = True
            Agreement.Event.apply(self, aggregate)

    class ProgressClaimed(Event):
        def apply(self, aggregate: Agreement) -> None:
            aggregate.claim_ids[self.data["claim_id"]] = True
            Agreement.Event.apply(self, aggregate)

    class AccusationMade(Event):
        def apply(self, aggregate: Agreement) -> None:
            aid = self.data["accusation_id"]
            aggregate.accusations[aid] = {"live": True, "resolved_by": None}
            aggregate.created_by_event[self.event_id] = ["accusation", aid]
            Agreement.Event.apply(self, aggregate)

    class AccusationAnswered(Event):
        pass

    class AccusationResolved(Event):
        def apply(self, aggregate: Agreement) -> None:
            aid = self.data["accusation_id"]
            aggregate.accusations[aid]["resolved_by"] = self.event_id
            aggregate.created_by_event[self.event_id] = ["resolution", aid]
            Agreement.Event.apply(self, aggregate)

    class CommitmentFulfilmentDeclared(Event):
        pass

    class RecordCorrected(Event):
        def apply(self, aggregate: Agreement) -> None:
            target = self.data["event_id"]
            aggregate.retracted[target] = self.event_id
            kind, key = aggregate.created_by_event.get(target, [None, None])
            if kind == "commitment":
                aggregate.commitments[key][2] = False
            elif kind == "accusation":
                aggregate.accusations[key]["live"] = False
            elif kind == "resolution" and aggregate.accusations[key]["resolved_by"] == target:
                aggregate.accusations[key]["resolved_by"] = None
            Agreement.Event.apply(self, aggregate)

    def __init__(self) -> None:
        """State is set by AgreementConcluded.apply: slug, concluded_on, parties,
        commitments, stage_ids, claim_ids, accusations, event_types,
        created_by_event and retracted."""

    # Commands. Each checks every 422 rule first, then the 409 ones, then
    # triggers exactly one event; `meta` holds event_id, recorded_by and timestamp.

    @classmethod
    def conclude(cls, agreement_uuid: Any, data: dict[str, Any], source: dict[str, Any],
                 meta: dict[str, Any]) -> Agreement:
        codes = [p["code"] for p in data["parties"]]
        for i, code in enumerate(codes):
            if code in codes[:i]:
                raise RuleViolated(f"party code {code!r} is declared twice", f"/parties/{i}/code")
        return cls._create(
            cls.AgreementConcluded,
            id=agreement_uuid,
            agreement_id=data["id"],
            occurred_on=data["concluded_on"],
            source=source,
            data=data,
            **meta,
        )

    def make_commitment(self, data: dict[str, Any], source: dict[str, Any], meta: dict[str, Any]) -> None:
        self._require_party(data["obligor"], "/obligor")
        self._require_party(data["beneficiary"], "/beneficiary")
        if data["obligor"] == data["beneficiary"]:
            raise RuleViolated("obligor and beneficiary must differ", "/beneficiary")
        quantity = data["quantity"]
        if quantity["qualifier"] in COUNTED_QUALIFIERS and quantity.get("value") is None:
            raise RuleViolated(f"a value is required when the qualifier is {quantity['qualifier']}",
                               "/quantity/value")
        if quantity["qualifier"] not in COUNTED_QUALIFIERS and quantity.get("value") is not None:
            raise RuleViolated(f"value must be null when the qualifier is {quantity['qualifier']}",
                               "/quantity/value")
        if data.get("reciprocal_of") is not None:
            other = self._live_commitment(data["reciprocal_of"], "/reciprocal_of")
            if (other[0], other[1]) != (data["beneficiary"], data["obligor"]):
                raise RuleViolated("reciprocal_of must name a commitment with obligor and beneficiary swapped",
                                   "/reciprocal_of")
        if data["commitment_id"] in self.commitments:
            raise AlreadyExists(f"commitment {data['commitment_id']!r} already exists", "/commitment_id")
        self._trigger(self.CommitmentMade, data, source, meta, data.get("made_on") or self.concluded_on)

    def record_stage(self, data: dict[str, Any], source: dict[str, Any], meta: dict[str, Any]) -> None:
        if not data["transfers"]:
            raise RuleViolated("a stage needs at least one transfer", "/transfers")
        for i, transfer in enumerate(data["transfers"]):
            at = f"/transfers/{i}"
            self._require_party(transfer["from"], f"{at}/from")
            self._require_party(transfer["to"], f"{at}/to")
            commitment = self._live_commitment(transfer["commitment_id"], f"{at}/commitment_id")
            if transfer["from"] != commitment[0]:
                raise RuleViolated("a transfer goes from its commitment's obligor", f"{at}/from")
            if transfer["to"] != commitment[1]:
                raise RuleViolated("a transfer goes to its commitment's beneficiary", f"{at}/to")
            self._check_count(transfer.get("count"), transfer["count_basis"], at)
        if data["stage_id"] in self.stage_ids:
            raise AlreadyExists(f"stage {data['stage_id']!r} already exists", "/stage_id")
        self._trigger(self.StageCompleted, data, source, meta, data["completed_on"])

    def claim_progress(self, data: dict[str, Any], source: dict[str, Any], meta: dict[str, Any]) -> None:
        self._require_party(data["party"], "/party")
        if data.get("commitment_id") is not None:
            self._live_commitment(data["commitment_id"], "/commitment_id")
        if data["claim_id"] in self.claim_ids:
            raise AlreadyExists(f"claim {data['claim_id']!r} already exists", "/claim_id")
        self._trigger(self.ProgressClaimed, data, source, meta, data["made_on"])

    def make_accusation(self, data: dict[str, Any], source: dict[str, Any], meta: dict[str, Any]) -> None:
        self._require_party(data["accuser"], "/accuser")
        self._require_party(data["accused"], "/accused")
        if data["accuser"] == data["accused"]:
            raise RuleViolated("accuser and accused must differ", "/accused")
        if data.get("commitment_id") is not None:
            self._live_commitment(data["commitment_id"], "/commitment_id")
        if data["accusation_id"] in self.accusations:
            raise AlreadyExists(f"accusation {data['accusation_id']!r} already exists", "/accusation_id")
        self._trigger(self.AccusationMade, data, source, meta, data["made_on"])

    def answer_accusation(self, data: dict[str, Any], source: dict[str, Any], meta: dict[str, Any]) -> None:
        self.require_live_accusation(data["accusation_id"])
        self._require_party(data["by"], "/by")
        self._trigger(self.AccusationAnswered, data, source, meta, data["made_on"])

    def resolve_accusation(self, data: dict[str, Any], source: dict[str, Any], meta: dict[str, Any]) -> None:
        accusation = self.require_live_accusation(data["accusation_id"])
        if accusation["resolved_by"] is not None:
            raise AlreadyExists(f"accusation {data['accusation_id']!r} is already resolved")
        self._trigger(self.AccusationResolved, data, source, meta, data["made_on"])

    def declare_fulfilment(self, data: dict[str, Any], source: dict[str, Any], meta: dict[str, Any]) -> None:
        self.require_live_commitment(data["commitment_id"])
        declared = data["declared_by"]
        if not declared:
            raise RuleViolated("declared_by needs at least one party", "/declared_by")
        for i, party in enumerate(declared):
            self._require_party(party, f"/declared_by/{i}")
            if party in declared[:i]:
                raise RuleViolated(f"party {party!r} is named twice", f"/declared_by/{i}")
        self._trigger(self.CommitmentFulfilmentDeclared, data, source, meta, data["made_on"])

    def correct_record(self, data: dict[str, Any], source: dict[str, Any], meta: dict[str, Any]) -> None:
        target = self.event_types.get(data["event_id"])
        if target is None:
            raise RuleViolated("event_id names no event of this agreement", "/event_id")
        if target[0] in UNCORRECTABLE:
            raise RuleViolated(f"a {target[0]} event cannot be corrected", "/event_id")
        if data["event_id"] in self.retracted:
            raise AlreadyExists(f"event {data['event_id']} is already retracted", "/event_id")
        self._trigger(self.RecordCorrected, data, source, meta, data["made_on"])

    # Lookups used by the commands and by the HTTP edge for 404s.

    def require_live_commitment(self, commitment_id: str) -> list[Any]:
        commitment = self.commitments.get(commitment_id)
        if commitment is None or not commitment[2]:
            raise NotFound(f"no commitment {commitment_id!r} in agreement {self.slug!r}")
        return commitment

    def require_live_accusation(self, accusation_id: str) -> dict[str, Any]:
        accusation = self.accusations.get(accusation_id)
        if accusation is None or not accusation["live"]:
            raise NotFound(f"no accusation {accusation_id!r} in agreement {self.slug!r}")
        return accusation

    def _live_commitment(self, commitment_id: str, pointer: str) -> list[Any]:
        commitment = self.commitments.get(commitment_id)
        if commitment is None or not commitment[2]:
            raise RuleViolated(f"commitment {commitment_id!r} is not a live commitment of this agreement",
                               pointer)
        return commitment

    def _require_party(self, code: str, pointer: str) -> None:
        if code not in self.parties:
            raise RuleViolated(f"party {code!r} is not declared in this agreement", pointer)

    @staticmethod
    def _check_count(count: int | None, basis: str, at: str) -> None:
        if basis == "undisclosed" and count is not None:
            raise RuleViolated("count must be null when count_basis is undisclosed", f"{at}/count")
        if basis != "undisclosed" and count is None:
            raise RuleViolated(f"count is required when count_basis is {basis}", f"{at}/count")

    def _trigger(self, event_class: type[Agreement.Event], data: dict[str, Any], source: dict[str, Any],
                 meta: dict[str, Any], occurred_on: str) -> None:
        self.trigger_event(event_class, agreement_id=self.slug, occurred_on=occurred_on, source=source,
                           data=data, **meta)


def event_meta(event_id: str, recorded_by: str, timestamp: datetime) -> dict[str, Any]:
    """The values an event needs that the caller must compute outside the aggregate."""
    return {"event_id": event_id, "recorded_by": recorded_by, "timestamp": timestamp}
