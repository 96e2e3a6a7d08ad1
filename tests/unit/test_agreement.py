"""The Agreement aggregate's rules, through the Pactwatch application on the in-memory store (no HTTP)."""
from __future__ import annotations

import copy
import uuid
from datetime import datetime, timezone
from typing import Any

import pytest

from domain.agreement import event_meta
from domain.application import Pactwatch
from domain.errors import AgreementNotFound, AlreadyExists, DomainError, NotFound, RuleViolated, VersionMismatch
from tests import builders as b

AID = "accord"


def body_of(request: dict[str, Any], **path_ids: str) -> Any:
    """What the HTTP edge hands the use case: a callable giving (data with path ids, source)."""
    data = {k: copy.deepcopy(v) for k, v in request.items() if k != "source"}
    data.update(path_ids)
    return lambda: (data, request["source"])


def meta() -> dict[str, Any]:
    return event_meta(str(uuid.uuid4()), "tester", datetime.now(timezone.utc))


def record(app: Pactwatch, kind: str, request: dict[str, Any], **path_ids: str) -> Any:
    """Record one event; returns the stored domain event."""
    recordings = app.record(AID, kind, body_of(request, **path_ids), meta(), **path_ids)
    assert len(recordings) == 1
    return recordings[0].domain_event


def version(app: Pactwatch) -> int:
    return app.get_agreement(AID).version


def refused(app: Pactwatch, error: type[DomainError], kind: str, request: dict[str, Any],
            **path_ids: str) -> DomainError:
    """Assert the command is refused with `error` and records nothing; returns the error."""
    before = version(app)
    with pytest.raises(error) as caught:
        record(app, kind, request, **path_ids)
    assert version(app) == before
    return caught.value


@pytest.fixture
def app() -> Pactwatch:
    """An agreement between AA and BB, with AA's commitment c1 (exact 100) to BB."""
    pactwatch = Pactwatch()
    pactwatch.conclude_agreement(body_of(b.agreement(AID)), meta())
    record(pactwatch, "commitment", b.commitment("c1"))
    return pactwatch


# Concluding an agreement.

def test_concluding_an_agreement_records_version_one_with_its_parties() -> None:
    pactwatch = Pactwatch()
    recordings = pactwatch.conclude_agreement(body_of(b.agreement("fresh")), meta())
    event = recordings[0].domain_event
    assert type(event).__name__ == "AgreementConcluded"
    assert event.originator_version == 1
    assert event.occurred_on == "2025-01-10"
    assert pactwatch.get_agreement("fresh").parties == {"AA": "Alpha", "BB": "Beta"}


def test_party_codes_must_be_unique_within_an_agreement() -> None:
    pactwatch = Pactwatch()
    parties = [{"code": "AA", "name": "Alpha"}, {"code": "BB", "name": "Beta"}, {"code": "AA", "name": "Again"}]
    with pytest.raises(RuleViolated) as caught:
        pactwatch.conclude_agreement(body_of(b.agreement("dup", parties=parties)), meta())
    assert caught.value.pointer == "/parties/2/code"
    assert not pactwatch.agreement_exists("dup")


def test_an_agreement_id_is_used_once_in_the_store(app: Pactwatch) -> None:
    with pytest.raises(AlreadyExists) as caught:
        app.conclude_agreement(body_of(b.agreement(AID, title="Another")), meta())
    assert caught.value.status == 409 and caught.value.pointer == "/id"
    assert version(app) == 2


def test_a_duplicate_agreement_with_duplicate_party_codes_is_a_422_not_a_409(app: Pactwatch) -> None:
    parties = [{"code": "AA", "name": "Alpha"}, {"code": "AA", "name": "Again"}]
    with pytest.raises(RuleViolated):
        app.conclude_agreement(body_of(b.agreement(AID, parties=parties)), meta())


def test_an_unknown_agreement_is_not_found() -> None:
    with pytest.raises(AgreementNotFound) as caught:
        Pactwatch().record("nowhere", "commitment", body_of(b.commitment()), meta())
    assert caught.value.status == 404


# Commitments.

@pytest.mark.parametrize(("over", "pointer"), [
    ({"obligor": "ZZ"}, "/obligor"),
    ({"beneficiary": "ZZ"}, "/beneficiary"),
])
def test_a_commitment_names_only_declared_parties(app: Pactwatch, over: dict[str, str], pointer: str) -> None:
    assert refused(app, RuleViolated, "commitment", b.commitment("c2", **over)).pointer == pointer


def test_obligor_and_beneficiary_must_differ(app: Pactwatch) -> None:
    error = refused(app, RuleViolated, "commitment", b.commitment("c2", obligor="AA", beneficiary="AA"))
    assert error.pointer == "/beneficiary"


@pytest.mark.parametrize("qualifier", ["exact", "at_least"])
def test_a_counted_qualifier_requires_a_value(app: Pactwatch, qualifier: str) -> None:
    error = refused(app, RuleViolated, "commitment", b.commitment("c2", qualifier=qualifier, value=None))
    assert error.pointer == "/quantity/value"


@pytest.mark.parametrize("qualifier", ["all", "unspecified"])
def test_an_uncounted_qualifier_requires_a_null_value(app: Pactwatch, qualifier: str) -> None:
    error = refused(app, RuleViolated, "commitment", b.commitment("c2", qualifier=qualifier, value=5))
    assert error.pointer == "/quantity/value"
    record(app, "commitment", b.commitment("c2", qualifier=qualifier, value=None))


def test_a_counted_qualifier_accepts_a_value_of_zero(app: Pactwatch) -> None:
    record(app, "commitment", b.commitment("c2", qualifier="at_least", value=0))


def test_reciprocal_of_names_a_commitment_with_obligor_and_beneficiary_swapped(app: Pactwatch) -> None:
    same_direction = b.commitment("c2", obligor="AA", beneficiary="BB", reciprocal_of="c1")
    assert refused(app, RuleViolated, "commitment", same_direction).pointer == "/reciprocal_of"
    event = record(app, "commitment", b.commitment("c2", obligor="BB", beneficiary="AA", reciprocal_of="c1"))
    assert event.data["reciprocal_of"] == "c1"


def test_reciprocal_of_must_name_a_known_commitment(app: Pactwatch) -> None:
    error = refused(app, RuleViolated, "commitment", b.commitment("c2", obligor="BB", beneficiary="AA",
                                                                   reciprocal_of="c9"))
    assert error.pointer == "/reciprocal_of"


def test_reciprocal_of_must_name_a_live_commitment(app: Pactwatch) -> None:
    made = record(app, "commitment", b.commitment("c2", obligor="BB", beneficiary="AA"))
    record(app, "correction", b.correction(made.event_id))
    error = refused(app, RuleViolated, "commitment", b.commitment("c3", obligor="AA", beneficiary="BB",
                                                                   reciprocal_of="c2"))
    assert error.pointer == "/reciprocal_of"


def test_a_commitment_occurs_on_made_on_or_else_when_the_agreement_was_concluded(app: Pactwatch) -> None:
    assert record(app, "commitment", b.commitment("c2")).occurred_on == "2025-01-10"
    assert record(app, "commitment", b.commitment("c3", made_on="2025-03-04")).occurred_on == "2025-03-04"


# Stages.

def test_a_stage_needs_at_least_one_transfer(app: Pactwatch) -> None:
    request = b.stage(transfers=[])
    request["transfers"] = []
    assert refused(app, RuleViolated, "stage", request).pointer == "/transfers"


def test_a_stage_cannot_cite_another_partys_commitment(app: Pactwatch) -> None:
    error = refused(app, RuleViolated, "stage", b.stage(transfers=[b.transfer("c1", frm="BB", to="AA")]))
    assert error.pointer == "/transfers/0/from"


def test_a_transfer_goes_to_its_commitments_beneficiary() -> None:
    pactwatch = Pactwatch()
    parties = [{"code": "AA", "name": "Alpha"}, {"code": "BB", "name": "Beta"}, {"code": "CC", "name": "Gamma"}]
    pactwatch.conclude_agreement(body_of(b.agreement(AID, parties=parties)), meta())
    record(pactwatch, "commitment", b.commitment("c1"))
    error = refused(pactwatch, RuleViolated, "stage", b.stage(transfers=[b.transfer("c1", frm="AA", to="CC")]))
    assert error.pointer == "/transfers/0/to"


@pytest.mark.parametrize(("over", "pointer"), [
    ({"frm": "ZZ"}, "/transfers/1/from"),
    ({"to": "ZZ"}, "/transfers/1/to"),
])
def test_a_transfer_names_only_declared_parties(app: Pactwatch, over: dict[str, str], pointer: str) -> None:
    request = b.stage(transfers=[b.transfer(), b.transfer(**over)])
    assert refused(app, RuleViolated, "stage", request).pointer == pointer


def test_a_transfer_must_cite_a_known_commitment(app: Pactwatch) -> None:
    error = refused(app, RuleViolated, "stage", b.stage(transfers=[b.transfer("c9")]))
    assert error.pointer == "/transfers/0/commitment_id"


def test_a_transfer_must_cite_a_live_commitment(app: Pactwatch) -> None:
    made = record(app, "commitment", b.commitment("c2"))
    record(app, "correction", b.correction(made.event_id))
    error = refused(app, RuleViolated, "stage", b.stage(transfers=[b.transfer("c2")]))
    assert error.pointer == "/transfers/0/commitment_id"


@pytest.mark.parametrize(("count", "basis"), [(5, "undisclosed"), (0, "undisclosed"), (None, "reported"),
                                              (None, "approximate")])
def test_count_is_null_exactly_when_the_basis_is_undisclosed(app: Pactwatch, count: int | None,
                                                            basis: str) -> None:
    error = refused(app, RuleViolated, "stage", b.stage(transfers=[b.transfer(count=count, basis=basis)]))
    assert error.pointer == "/transfers/0/count"


@pytest.mark.parametrize(("count", "basis"), [(None, "undisclosed"), (0, "reported"), (7, "approximate")])
def test_counts_matching_their_basis_are_accepted(app: Pactwatch, count: int | None, basis: str) -> None:
    event = record(app, "stage", b.stage(transfers=[b.transfer(count=count, basis=basis)]))
    assert event.occurred_on == "2025-02-01"


# Claims, accusations, answers, resolutions, declarations.

def test_a_claim_is_made_by_a_declared_party(app: Pactwatch) -> None:
    assert refused(app, RuleViolated, "claim", b.claim(party="ZZ")).pointer == "/party"


def test_a_claim_may_cite_only_a_live_commitment(app: Pactwatch) -> None:
    assert refused(app, RuleViolated, "claim", b.claim(commitment_id="c9")).pointer == "/commitment_id"
    assert record(app, "claim", b.claim(commitment_id="c1", count=640)).data["count"] == 640


@pytest.mark.parametrize(("over", "pointer"), [
    ({"accuser": "ZZ"}, "/accuser"),
    ({"accused": "ZZ"}, "/accused"),
    ({"commitment_id": "c9"}, "/commitment_id"),
])
def test_an_accusation_names_declared_parties_and_a_live_commitment(app: Pactwatch, over: dict[str, str],
                                                                    pointer: str) -> None:
    assert refused(app, RuleViolated, "accusation", b.accusation(**over)).pointer == pointer


def test_accuser_and_accused_must_differ(app: Pactwatch) -> None:
    assert refused(app, RuleViolated, "accusation", b.accusation(accuser="AA", accused="AA")).pointer == "/accused"


def test_an_answer_is_given_by_a_declared_party(app: Pactwatch) -> None:
    record(app, "accusation", b.accusation("a1"))
    assert refused(app, RuleViolated, "response", b.response(by="ZZ"), accusation_id="a1").pointer == "/by"
    record(app, "response", b.response(by="AA"), accusation_id="a1")


def test_an_answer_or_resolution_of_an_unknown_accusation_is_not_found(app: Pactwatch) -> None:
    refused(app, NotFound, "response", b.response(), accusation_id="a9")
    refused(app, NotFound, "resolution", b.resolution(), accusation_id="a9")


def test_a_retracted_accusation_can_no_longer_be_answered_or_resolved(app: Pactwatch) -> None:
    made = record(app, "accusation", b.accusation("a1"))
    record(app, "correction", b.correction(made.event_id))
    refused(app, NotFound, "response", b.response(), accusation_id="a1")
    refused(app, NotFound, "resolution", b.resolution(), accusation_id="a1")
    with pytest.raises(NotFound):
        app.get_agreement(AID).require_live_accusation("a1")


def test_resolving_a_resolved_accusation_is_a_conflict(app: Pactwatch) -> None:
    record(app, "accusation", b.accusation("a1"))
    record(app, "resolution", b.resolution("upheld"), accusation_id="a1")
    assert refused(app, AlreadyExists, "resolution", b.resolution("rejected"), accusation_id="a1").status == 409


def test_an_accusation_whose_resolution_was_retracted_can_be_resolved_again(app: Pactwatch) -> None:
    record(app, "accusation", b.accusation("a1"))
    resolved = record(app, "resolution", b.resolution("upheld"), accusation_id="a1")
    record(app, "correction", b.correction(resolved.event_id))
    assert record(app, "resolution", b.resolution("withdrawn"), accusation_id="a1").data["outcome"] == "withdrawn"


def test_declared_by_is_a_non_empty_list(app: Pactwatch) -> None:
    request = b.declaration()
    request["declared_by"] = []
    assert refused(app, RuleViolated, "fulfilment", request, commitment_id="c1").pointer == "/declared_by"


def test_declared_by_names_distinct_declared_parties(app: Pactwatch) -> None:
    assert refused(app, RuleViolated, "fulfilment", b.declaration("BB", "ZZ"),
                   commitment_id="c1").pointer == "/declared_by/1"
    assert refused(app, RuleViolated, "fulfilment", b.declaration("BB", "AA", "BB"),
                   commitment_id="c1").pointer == "/declared_by/2"
    record(app, "fulfilment", b.declaration("BB", "AA"), commitment_id="c1")


def test_a_declaration_for_an_unknown_or_retracted_commitment_is_not_found(app: Pactwatch) -> None:
    refused(app, NotFound, "fulfilment", b.declaration("BB"), commitment_id="c9")
    made = record(app, "commitment", b.commitment("c2"))
    record(app, "correction", b.correction(made.event_id))
    refused(app, NotFound, "fulfilment", b.declaration("BB"), commitment_id="c2")


@pytest.mark.parametrize(("kind", "request_", "expected"), [
    ("claim", b.claim(made_on="2025-04-01"), "2025-04-01"),
    ("accusation", b.accusation(made_on="2025-04-02"), "2025-04-02"),
    ("fulfilment", b.declaration("BB", made_on="2025-04-03"), "2025-04-03"),
])
def test_other_events_occur_on_their_made_on(app: Pactwatch, kind: str, request_: dict[str, Any],
                                             expected: str) -> None:
    path = {"commitment_id": "c1"} if kind == "fulfilment" else {}
    assert record(app, kind, request_, **path).occurred_on == expected


# Corrections.

def test_a_correction_retracts_an_earlier_event(app: Pactwatch) -> None:
    claimed = record(app, "claim", b.claim("k1"))
    corrected = record(app, "correction", b.correction(claimed.event_id))
    assert corrected.data["event_id"] == claimed.event_id
    assert app.get_agreement(AID).retracted == {claimed.event_id: corrected.event_id}


def test_agreement_concluded_cannot_be_corrected(app: Pactwatch) -> None:
    concluded = app.get_agreement(AID)
    first = next(eid for eid, (kind, _) in concluded.event_types.items() if kind == "AgreementConcluded")
    assert refused(app, RuleViolated, "correction", b.correction(first)).pointer == "/event_id"


def test_a_correction_cannot_be_corrected(app: Pactwatch) -> None:
    claimed = record(app, "claim", b.claim("k1"))
    corrected = record(app, "correction", b.correction(claimed.event_id))
    assert refused(app, RuleViolated, "correction", b.correction(corrected.event_id)).pointer == "/event_id"


def test_correcting_an_event_already_retracted_is_a_conflict(app: Pactwatch) -> None:
    claimed = record(app, "claim", b.claim("k1"))
    record(app, "correction", b.correction(claimed.event_id))
    assert refused(app, AlreadyExists, "correction", b.correction(claimed.event_id)).status == 409


def test_a_correction_must_name_an_event_of_this_agreement(app: Pactwatch) -> None:
    assert refused(app, RuleViolated, "correction", b.correction(str(uuid.uuid4()))).pointer == "/event_id"
    app.conclude_agreement(body_of(b.agreement("other")), meta())
    elsewhere = app.record("other", "claim", body_of(b.claim("k1")), meta())[0].domain_event
    assert refused(app, RuleViolated, "correction", b.correction(elsewhere.event_id)).pointer == "/event_id"


# Ids: unique per kind, forever.

@pytest.mark.parametrize(("kind", "first", "again", "pointer"), [
    ("commitment", b.commitment("c2"), b.commitment("c2", obligor="BB", beneficiary="AA", value=1),
     "/commitment_id"),
    ("stage", b.stage("s1"), b.stage("s1", completed_on="2025-03-01"), "/stage_id"),
    ("claim", b.claim("k1"), b.claim("k1", party="BB"), "/claim_id"),
    ("accusation", b.accusation("a1"), b.accusation("a1", accuser="AA", accused="BB"), "/accusation_id"),
])
def test_an_id_is_used_once_per_kind_even_after_its_event_is_retracted(app: Pactwatch, kind: str,
                                                                        first: dict[str, Any],
                                                                        again: dict[str, Any],
                                                                        pointer: str) -> None:
    made = record(app, kind, first)
    assert refused(app, AlreadyExists, kind, again).pointer == pointer
    record(app, "correction", b.correction(made.event_id))
    assert refused(app, AlreadyExists, kind, again).pointer == pointer


def test_ids_of_different_kinds_do_not_collide(app: Pactwatch) -> None:
    record(app, "stage", b.stage("c1"))
    record(app, "claim", b.claim("c1"))
    record(app, "accusation", b.accusation("c1"))


@pytest.mark.parametrize(("kind", "request_"), [
    ("commitment", b.commitment("c1", obligor="ZZ")),
    ("commitment", b.commitment("c1", qualifier="all", value=3)),
    ("stage", b.stage("s1", transfers=[b.transfer("c9")])),
    ("claim", b.claim("k1", party="ZZ")),
    ("accusation", b.accusation("a1", accuser="AA", accused="AA")),
])
def test_rule_violations_are_reported_before_duplicate_ids(app: Pactwatch, kind: str,
                                                           request_: dict[str, Any]) -> None:
    record(app, "stage", b.stage("s1"))
    record(app, "claim", b.claim("k1"))
    record(app, "accusation", b.accusation("a1"))
    refused(app, RuleViolated, kind, request_)


# The order of checks: 404, then 412, then the body.

def test_the_body_is_not_read_when_the_path_names_nothing(app: Pactwatch) -> None:
    def body() -> Any:
        raise AssertionError("the body was parsed before the 404 check")

    with pytest.raises(NotFound):
        app.record(AID, "response", body, meta(), accusation_id="a9")
    with pytest.raises(AgreementNotFound):
        app.record("nowhere", "commitment", body, meta())


def test_a_stale_expected_version_is_refused_before_the_body_is_read(app: Pactwatch) -> None:
    def body() -> Any:
        raise AssertionError("the body was parsed before the 412 check")

    with pytest.raises(VersionMismatch) as caught:
        app.record(AID, "claim", body, meta(), expected_version=1)
    assert caught.value.status == 412
    with pytest.raises(NotFound):
        app.record(AID, "fulfilment", body, meta(), expected_version=1, commitment_id="c9")


def test_the_current_expected_version_is_accepted(app: Pactwatch) -> None:
    recordings = app.record(AID, "claim", body_of(b.claim()), meta(), expected_version=2)
    assert recordings[0].domain_event.originator_version == 3
