"""The compliance rules of API.md on the pure fold (projections/compliance.py, projections/replay.py)."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from projections import replay
from projections.envelope import format_recorded_at
from projections.replay import Filters
from tests import builders as b

AID = "accord"
TODAY = "2025-06-30"
FIRST_RECORDED = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)
TYPES = {"agreement": "AgreementConcluded", "commitment": "CommitmentMade", "stage": "StageCompleted",
         "claim": "ProgressClaimed", "accusation": "AccusationMade", "response": "AccusationAnswered",
         "resolution": "AccusationResolved", "fulfilment": "CommitmentFulfilmentDeclared",
         "correction": "RecordCorrected"}


class History:
    """One agreement's envelopes as the store would serve them: versions 1, 2, …, positions with gaps,
    recorded one minute apart from FIRST_RECORDED."""

    def __init__(self, **agreement: Any) -> None:
        self.envelopes: list[dict[str, Any]] = []
        self.add("agreement", b.agreement(AID, **agreement))

    def add(self, kind: str, request: dict[str, Any], **path_ids: str) -> dict[str, Any]:
        data = {k: v for k, v in request.items() if k != "source"}
        data.update(path_ids)
        version = len(self.envelopes) + 1
        if kind == "agreement":
            occurred_on = data["concluded_on"]
        elif kind == "commitment":
            occurred_on = data.get("made_on") or self.envelopes[0]["occurred_on"]
        elif kind == "stage":
            occurred_on = data["completed_on"]
        else:
            occurred_on = data["made_on"]
        envelope = {
            "position": version * 3, "id": str(uuid.uuid4()), "agreement_id": AID, "type": TYPES[kind],
            "version": version, "recorded_at": recorded_at(version), "occurred_on": occurred_on,
            "recorded_by": "tester", "source": request["source"], "data": data,
            "prev_hash": None, "hash": None,
        }
        self.envelopes.append(envelope)
        return envelope

    def retract(self, envelope: dict[str, Any], made_on: str = "2025-02-07") -> dict[str, Any]:
        return self.add("correction", b.correction(envelope["id"], made_on=made_on))

    def without(self, *dropped: dict[str, Any]) -> list[dict[str, Any]]:
        ids = {e["id"] for e in dropped}
        return [e for e in self.envelopes if e["id"] not in ids]


def recorded_at(version: int) -> str:
    return format_recorded_at(FIRST_RECORDED + timedelta(minutes=version))


def answer(source: History | list[dict[str, Any]], today: str = TODAY, **filters: Any) -> dict[str, Any]:
    envelopes = source.envelopes if isinstance(source, History) else source
    chosen = Filters(**filters)
    return replay.answer(replay.fold(envelopes, AID, chosen), AID, chosen, today)


def commitment(result: dict[str, Any], commitment_id: str) -> dict[str, Any]:
    for party in result["parties"].values():
        for item in party["commitments"]:
            if item["commitment_id"] == commitment_id:
                return item
    raise KeyError(commitment_id)


def commitment_ids(result: dict[str, Any], party: str) -> list[str]:
    return [c["commitment_id"] for c in result["parties"][party]["commitments"]]


def summary(result: dict[str, Any], party: str) -> dict[str, int]:
    return result["parties"][party]["summary"]


@pytest.fixture
def history() -> History:
    """AA commits c1 (exact 100) to BB; BB commits c2 (at_least 50) to AA."""
    h = History()
    h.add("commitment", b.commitment("c1", "AA", "BB", "exact", 100))
    h.add("commitment", b.commitment("c2", "BB", "AA", "at_least", 50))
    return h


# The shape of the answer.

def test_the_answer_lists_every_party_with_its_commitments_and_summary(history: History) -> None:
    result = answer(history)
    assert set(result) == {"agreement_id", "version", "as_of", "known_at", "evaluated_on", "parties"}
    assert result["agreement_id"] == AID and result["version"] == 3
    assert set(result["parties"]) == {"AA", "BB"}
    party = result["parties"]["AA"]
    assert party["party"] == "AA" and party["name"] == "Alpha"
    assert set(party["summary"]) == {"commitments", "fulfilled", "in_progress", "pending", "overdue",
                                     "accusations_made", "accusations_received", "accusations_open_against"}
    assert commitment(result, "c1") == {
        "commitment_id": "c1", "beneficiary": "BB", "action": "release_prisoners", "subject": "detainees",
        "target": {"qualifier": "exact", "value": 100}, "due_by": None,
        "delivered": {"reported": 0, "approximate": 0, "undisclosed_transfers": 0},
        "status": "pending", "disputed": False, "stages": [], "claims": [], "open_accusations": [],
    }


def test_a_party_without_commitments_is_still_listed() -> None:
    result = answer(History())
    assert result["parties"]["BB"]["commitments"] == []
    assert summary(result, "BB")["commitments"] == 0


# Delivered figures.

def test_delivered_sums_counts_by_basis(history: History) -> None:
    history.add("stage", b.stage("s1", transfers=[b.transfer("c1", count=10), b.transfer("c1", count=5),
                                                 b.transfer("c1", count=7, basis="approximate")]))
    history.add("stage", b.stage("s2", transfers=[b.transfer("c1", count=None, basis="undisclosed"),
                                                 b.transfer("c1", count=20),
                                                 b.transfer("c2", "BB", "AA", count=3)]))
    history.add("stage", b.stage("s3", transfers=[b.transfer("c1", count=None, basis="undisclosed"),
                                                 b.transfer("c1", count=30, basis="approximate")]))
    result = answer(history)
    assert commitment(result, "c1")["delivered"] == {"reported": 35, "approximate": 37, "undisclosed_transfers": 2}
    assert commitment(result, "c2")["delivered"] == {"reported": 3, "approximate": 0, "undisclosed_transfers": 0}


def test_claims_never_change_delivered_or_status(history: History) -> None:
    history.add("claim", b.claim("k1", party="AA", commitment_id="c1", count=500))
    history.add("claim", b.claim("k2", party="BB", commitment_id="c1", count=100))
    c1 = commitment(answer(history), "c1")
    assert c1["delivered"] == {"reported": 0, "approximate": 0, "undisclosed_transfers": 0}
    assert c1["status"] == "pending"
    assert c1["claims"] == ["k1", "k2"]


def test_claims_list_only_those_citing_the_commitment(history: History) -> None:
    history.add("claim", b.claim("k1", party="BB", commitment_id="c2"))
    history.add("claim", b.claim("k2", party="AA"))
    history.add("claim", b.claim("k3", party="BB", commitment_id="c1"))
    result = answer(history)
    assert commitment(result, "c1")["claims"] == ["k3"]
    assert commitment(result, "c2")["claims"] == ["k1"]


# Status.

@pytest.mark.parametrize(("qualifier", "value", "reported", "expected"), [
    ("exact", 100, 100, "fulfilled"),
    ("exact", 100, 130, "fulfilled"),
    ("exact", 100, 99, "in_progress"),
    ("at_least", 50, 50, "fulfilled"),
    ("at_least", 50, 49, "in_progress"),
    ("at_least", 0, 0, "fulfilled"),
    ("all", None, 10_000, "in_progress"),
    ("unspecified", None, 10_000, "in_progress"),
])
def test_reported_figures_fulfil_counted_targets(qualifier: str, value: int | None, reported: int,
                                                 expected: str) -> None:
    h = History()
    h.add("commitment", b.commitment("c1", qualifier=qualifier, value=value))
    h.add("stage", b.stage(transfers=[b.transfer("c1", count=reported)]))
    assert commitment(answer(h), "c1")["status"] == expected


def test_approximate_figures_never_fulfil(history: History) -> None:
    history.add("stage", b.stage(transfers=[b.transfer("c1", count=1000, basis="approximate")]))
    c1 = commitment(answer(history), "c1")
    assert c1["delivered"]["approximate"] == 1000
    assert c1["status"] == "in_progress"


def test_reported_and_approximate_figures_are_not_added_to_fulfil(history: History) -> None:
    history.add("stage", b.stage(transfers=[b.transfer("c1", count=60), b.transfer("c1", count=60,
                                                                                     basis="approximate")]))
    assert commitment(answer(history), "c1")["status"] == "in_progress"


def test_a_declaration_by_the_beneficiary_fulfils(history: History) -> None:
    history.add("fulfilment", b.declaration("BB"), commitment_id="c1")
    assert commitment(answer(history), "c1")["status"] == "fulfilled"


def test_a_joint_declaration_naming_the_beneficiary_fulfils(history: History) -> None:
    history.add("fulfilment", b.declaration("AA", "BB"), commitment_id="c1")
    assert commitment(answer(history), "c1")["status"] == "fulfilled"


def test_a_declaration_by_the_obligor_alone_changes_no_status(history: History) -> None:
    history.add("fulfilment", b.declaration("AA"), commitment_id="c1")
    result = answer(history)
    assert commitment(result, "c1")["status"] == "pending"
    assert summary(result, "AA")["fulfilled"] == 0


def test_fulfilment_wins_over_overdue() -> None:
    h = History()
    h.add("commitment", b.commitment("c1", due_by="2025-03-01"))
    h.add("commitment", b.commitment("c2", due_by="2025-03-01", value=10))
    h.add("fulfilment", b.declaration("BB"), commitment_id="c1")
    h.add("stage", b.stage(transfers=[b.transfer("c2", count=10)]))
    result = answer(h)
    assert commitment(result, "c1")["status"] == "fulfilled"
    assert commitment(result, "c2")["status"] == "fulfilled"


def test_overdue_when_due_by_is_before_the_evaluation_day() -> None:
    h = History()
    h.add("commitment", b.commitment("c1", due_by="2025-03-01"))
    h.add("stage", b.stage(transfers=[b.transfer("c1", count=10)]))
    assert commitment(answer(h, today="2025-03-02"), "c1")["status"] == "overdue"
    assert commitment(answer(h, today="2025-03-01"), "c1")["status"] == "in_progress"


def test_in_progress_when_any_transfer_exists_even_undisclosed(history: History) -> None:
    history.add("stage", b.stage(transfers=[b.transfer("c1", count=None, basis="undisclosed")]))
    assert commitment(answer(history), "c1")["status"] == "in_progress"
    assert commitment(answer(history), "c2")["status"] == "pending"


def test_the_summary_counts_commitments_by_status() -> None:
    h = History()
    h.add("commitment", b.commitment("done", value=1))
    h.add("commitment", b.commitment("late", due_by="2025-01-31"))
    h.add("commitment", b.commitment("going"))
    h.add("commitment", b.commitment("idle"))
    h.add("stage", b.stage(transfers=[b.transfer("done", count=1), b.transfer("going", count=1)]))
    assert summary(answer(h), "AA") == {
        "commitments": 4, "fulfilled": 1, "in_progress": 1, "pending": 1, "overdue": 1,
        "accusations_made": 0, "accusations_received": 0, "accusations_open_against": 0,
    }


# Accusations.

def test_open_accusations_against_the_obligor_citing_the_commitment_dispute_it(history: History) -> None:
    history.add("accusation", b.accusation("a1", accuser="BB", accused="AA", commitment_id="c1"))
    history.add("accusation", b.accusation("a2", accuser="AA", accused="BB", commitment_id="c1"))
    history.add("accusation", b.accusation("a3", accuser="BB", accused="AA"))
    history.add("accusation", b.accusation("a4", accuser="BB", accused="AA", commitment_id="c1"))
    result = answer(history)
    c1 = commitment(result, "c1")
    assert c1["open_accusations"] == ["a1", "a4"]
    assert c1["disputed"] is True
    assert commitment(result, "c2")["disputed"] is False


def test_a_resolved_accusation_no_longer_disputes(history: History) -> None:
    history.add("accusation", b.accusation("a1", commitment_id="c1"))
    history.add("response", b.response(), accusation_id="a1")
    assert commitment(answer(history), "c1")["disputed"] is True
    history.add("resolution", b.resolution("rejected"), accusation_id="a1")
    result = answer(history)
    assert commitment(result, "c1")["open_accusations"] == []
    assert commitment(result, "c1")["disputed"] is False
    assert summary(result, "AA")["accusations_open_against"] == 0
    assert summary(result, "AA")["accusations_received"] == 1


def test_accusations_count_whatever_they_cite(history: History) -> None:
    gone = history.add("commitment", b.commitment("c3"))
    history.add("accusation", b.accusation("a1", accuser="BB", accused="AA", commitment_id="c1"))
    history.add("accusation", b.accusation("a2", accuser="BB", accused="AA"))
    history.add("accusation", b.accusation("a3", accuser="BB", accused="AA", commitment_id="c3"))
    history.add("accusation", b.accusation("a4", accuser="AA", accused="BB"))
    history.add("resolution", b.resolution(), accusation_id="a2")
    history.retract(gone)
    result = answer(history)
    assert {k: v for k, v in summary(result, "AA").items() if k.startswith("accusations")} == {
        "accusations_made": 1, "accusations_received": 3, "accusations_open_against": 2}
    assert {k: v for k, v in summary(result, "BB").items() if k.startswith("accusations")} == {
        "accusations_made": 3, "accusations_received": 1, "accusations_open_against": 1}
    assert commitment(result, "c1")["open_accusations"] == ["a1"]


def test_an_accusation_citing_a_commitment_that_does_not_count_disputes_nothing() -> None:
    h = History()
    h.add("commitment", b.commitment("c1", made_on="2025-05-01"))
    h.add("accusation", b.accusation("a1", commitment_id="c1", made_on="2025-02-03"))
    result = answer(h, as_of="2025-03-01")
    assert result["parties"]["AA"]["commitments"] == []
    assert summary(result, "AA")["accusations_received"] == 1


# Retractions: the retracted event counts as never recorded.

def rich_history() -> History:
    h = History()
    h.add("commitment", b.commitment("c1", "AA", "BB", "exact", 100, due_by="2025-04-01"))
    h.add("commitment", b.commitment("c2", "BB", "AA", "at_least", 10, reciprocal_of="c1"))
    h.add("stage", b.stage("s1", transfers=[b.transfer("c1", count=60), b.transfer("c2", "BB", "AA", count=5)]))
    h.add("stage", b.stage("s2", completed_on="2025-03-01",
                           transfers=[b.transfer("c1", count=40), b.transfer("c1", count=3, basis="approximate"),
                                      b.transfer("c1", count=None, basis="undisclosed")]))
    h.add("claim", b.claim("k1", party="AA", commitment_id="c1", count=100))
    h.add("claim", b.claim("k2", party="BB", commitment_id="c1"))
    h.add("accusation", b.accusation("a1", accuser="BB", accused="AA", commitment_id="c1"))
    h.add("accusation", b.accusation("a2", accuser="AA", accused="BB", commitment_id="c2"))
    h.add("response", b.response(by="AA"), accusation_id="a1")
    h.add("resolution", b.resolution("upheld"), accusation_id="a2")
    h.add("fulfilment", b.declaration("AA"), commitment_id="c2")
    h.add("fulfilment", b.declaration("AA"), commitment_id="c1")
    return h


RICH = rich_history()
RETRACTABLE = [e for e in RICH.envelopes if e["type"] != "AgreementConcluded"]


@pytest.mark.parametrize("target", RETRACTABLE, ids=[f"{e['version']}-{e['type']}" for e in RETRACTABLE])
def test_a_retracted_event_counts_as_never_recorded(target: dict[str, Any]) -> None:
    h = History()
    h.envelopes = [dict(e) for e in RICH.envelopes]
    h.retract(target)
    never_recorded = answer(RICH.without(target))
    retracted = answer(h)
    assert retracted["parties"] == never_recorded["parties"]
    assert retracted["version"] == len(RICH.envelopes) + 1


def test_retracting_a_stage_takes_back_its_figures_and_its_place_in_the_lists() -> None:
    h = rich_history()
    stage_two = next(e for e in h.envelopes if e["type"] == "StageCompleted" and e["data"]["stage_id"] == "s2")
    before = commitment(answer(h), "c1")
    assert (before["status"], before["stages"], before["delivered"]["reported"]) == ("fulfilled", ["s1", "s2"], 100)
    h.retract(stage_two)
    after = commitment(answer(h), "c1")
    assert after["delivered"] == {"reported": 60, "approximate": 0, "undisclosed_transfers": 0}
    assert after["stages"] == ["s1"]
    assert after["status"] == "overdue"


def test_retracting_a_commitment_removes_it_and_ignores_what_cites_it() -> None:
    h = History()
    made = h.add("commitment", b.commitment("c1"))
    h.add("stage", b.stage(transfers=[b.transfer("c1", count=5)]))
    h.add("accusation", b.accusation("a1", commitment_id="c1"))
    h.retract(made)
    result = answer(h)
    assert result["parties"]["AA"]["commitments"] == []
    assert summary(result, "AA")["commitments"] == 0
    assert summary(result, "AA")["accusations_open_against"] == 1


def test_retracting_a_resolution_reopens_the_accusation(history: History) -> None:
    history.add("accusation", b.accusation("a1", commitment_id="c1"))
    resolved = history.add("resolution", b.resolution(), accusation_id="a1")
    history.retract(resolved)
    assert commitment(answer(history), "c1")["open_accusations"] == ["a1"]


def test_an_accusation_resolved_again_after_a_retracted_resolution_is_closed(history: History) -> None:
    history.add("accusation", b.accusation("a1", commitment_id="c1"))
    history.retract(history.add("resolution", b.resolution(), accusation_id="a1"))
    history.add("resolution", b.resolution("withdrawn"), accusation_id="a1")
    assert commitment(answer(history), "c1")["open_accusations"] == []


def test_retracting_a_declaration_takes_back_the_fulfilment(history: History) -> None:
    declared = history.add("fulfilment", b.declaration("BB"), commitment_id="c1")
    history.add("fulfilment", b.declaration("AA"), commitment_id="c1")
    history.retract(declared)
    assert commitment(answer(history), "c1")["status"] == "pending"


def test_retracting_one_of_two_beneficiary_declarations_keeps_the_fulfilment(history: History) -> None:
    declared = history.add("fulfilment", b.declaration("BB"), commitment_id="c1")
    history.add("fulfilment", b.declaration("BB", "AA"), commitment_id="c1")
    history.retract(declared)
    assert commitment(answer(history), "c1")["status"] == "fulfilled"


# Filters.

@pytest.fixture
def dated() -> History:
    """c1 made at conclusion (2025-01-10); stages on 02-01 and 03-01; c2 made on 04-01; a claim on 05-01."""
    h = History()
    h.add("commitment", b.commitment("c1", value=100))
    h.add("stage", b.stage("s1", completed_on="2025-02-01", transfers=[b.transfer("c1", count=30)]))
    h.add("stage", b.stage("s2", completed_on="2025-03-01", transfers=[b.transfer("c1", count=70)]))
    h.add("commitment", b.commitment("c2", made_on="2025-04-01"))
    h.add("claim", b.claim("k1", commitment_id="c2", made_on="2025-05-01"))
    return h


def test_as_of_keeps_events_that_occurred_on_or_before_that_day(dated: History) -> None:
    result = answer(dated, as_of="2025-02-01")
    assert commitment(result, "c1")["delivered"]["reported"] == 30
    assert commitment_ids(result, "AA") == ["c1"]
    assert result["version"] == 3
    assert commitment(answer(dated, as_of="2025-03-01"), "c1")["status"] == "fulfilled"


def test_as_of_keeps_events_by_when_they_occurred_not_when_they_were_recorded() -> None:
    h = History()
    h.add("commitment", b.commitment("c1"))
    h.add("stage", b.stage("late-news", completed_on="2025-01-20", transfers=[b.transfer("c1", count=5)]))
    h.add("stage", b.stage("early", completed_on="2025-05-01", transfers=[b.transfer("c1", count=7)]))
    h.add("stage", b.stage("old-news", completed_on="2025-01-15", transfers=[b.transfer("c1", count=11)]))
    result = answer(h, as_of="2025-02-01")
    assert commitment(result, "c1")["delivered"]["reported"] == 16
    assert commitment(result, "c1")["stages"] == ["late-news", "old-news"]
    assert result["version"] == 5


def test_known_at_keeps_events_recorded_at_or_before_that_instant(dated: History) -> None:
    result = answer(dated, known_at=recorded_at(3))
    assert commitment(result, "c1")["delivered"]["reported"] == 30
    assert result["version"] == 3
    just_before = format_recorded_at(FIRST_RECORDED + timedelta(minutes=3) - timedelta(microseconds=1))
    assert answer(dated, known_at=just_before)["version"] == 2


def test_version_keeps_agreement_versions_up_to_n(dated: History) -> None:
    result = answer(dated, version=4)
    assert commitment(result, "c1")["status"] == "fulfilled"
    assert commitment_ids(result, "AA") == ["c1"]
    assert result["version"] == 4


def test_filters_combine(dated: History) -> None:
    assert answer(dated, as_of="2025-12-31", version=3)["version"] == 3
    assert commitment(answer(dated, as_of="2025-02-15", known_at=recorded_at(4)), "c1")["delivered"][
        "reported"] == 30
    result = answer(dated, as_of="2025-04-01", version=6)
    assert commitment_ids(result, "AA") == ["c1", "c2"]
    assert commitment(result, "c2")["claims"] == []
    assert result["version"] == 5


def test_a_correction_applies_whatever_as_of_says(dated: History) -> None:
    first_stage = dated.envelopes[2]
    dated.retract(first_stage, made_on="2025-06-01")
    result = answer(dated, as_of="2025-02-15")
    assert commitment(result, "c1")["delivered"]["reported"] == 0
    assert commitment(result, "c1")["stages"] == []
    assert result["version"] == 7


def test_a_correction_applies_only_once_it_passes_known_at_and_version(dated: History) -> None:
    first_stage = dated.envelopes[2]
    dated.retract(first_stage)
    assert commitment(answer(dated, version=6), "c1")["delivered"]["reported"] == 100
    assert commitment(answer(dated, known_at=recorded_at(6)), "c1")["delivered"]["reported"] == 100
    assert commitment(answer(dated, version=7), "c1")["delivered"]["reported"] == 70
    assert commitment(answer(dated, known_at=recorded_at(7)), "c1")["delivered"]["reported"] == 70


def test_nothing_counts_before_the_agreement_was_concluded() -> None:
    h = History()
    h.add("commitment", b.commitment("c1", made_on="2024-12-01"))
    result = answer(h, as_of="2025-01-09")
    assert result["parties"] == {} and result["version"] == 0
    early = answer(h, known_at=format_recorded_at(FIRST_RECORDED))
    assert early["parties"] == {} and early["version"] == 0
    assert commitment_ids(answer(h, as_of="2025-01-10"), "AA") == ["c1"]


def test_the_answer_echoes_its_filters(dated: History) -> None:
    result = answer(dated, as_of="2025-02-01", known_at="2025-06-01T12:03:00.000000Z", version=9)
    assert (result["as_of"], result["known_at"]) == ("2025-02-01", "2025-06-01T12:03:00.000000Z")
    bare = answer(dated)
    assert (bare["as_of"], bare["known_at"], bare["version"]) == (None, None, 6)


def test_evaluated_on_is_as_of_else_the_utc_day_of_known_at_else_today(dated: History) -> None:
    assert answer(dated, as_of="2025-02-01", known_at="2025-06-03T01:00:00.000000Z")["evaluated_on"] == "2025-02-01"
    assert answer(dated, known_at="2025-06-03T23:59:59.999999Z")["evaluated_on"] == "2025-06-03"
    assert answer(dated, version=2, today="2031-07-04")["evaluated_on"] == "2031-07-04"
    assert answer(dated, today="2031-07-04")["evaluated_on"] == "2031-07-04"


def test_the_evaluation_day_decides_overdue() -> None:
    h = History()
    h.add("commitment", b.commitment("c1", due_by="2025-03-01"))
    assert commitment(answer(h, as_of="2025-03-01"), "c1")["status"] == "pending"
    assert commitment(answer(h, as_of="2025-03-02"), "c1")["status"] == "overdue"
    assert commitment(answer(h, today="2025-03-02"), "c1")["status"] == "overdue"
    h.add("commitment", b.commitment("c2", due_by="2025-06-01"))
    assert commitment(answer(h, known_at="2025-06-01T23:59:59.000000Z"), "c2")["status"] == "pending"
    assert commitment(answer(h, known_at="2025-06-02T00:00:00.000000Z"), "c2")["status"] == "overdue"


# Lists: ascending position of the creating event, no duplicates.

def test_lists_follow_the_position_of_the_creating_event_without_duplicates() -> None:
    h = History()
    for cid in ("c-z", "c-a", "c-m"):
        h.add("commitment", b.commitment(cid))
    h.add("stage", b.stage("s-z", completed_on="2025-03-01",
                           transfers=[b.transfer("c-a", count=1), b.transfer("c-a", count=2)]))
    h.add("stage", b.stage("s-a", completed_on="2025-02-01", transfers=[b.transfer("c-a", count=3)]))
    h.add("claim", b.claim("k-z", commitment_id="c-a"))
    h.add("claim", b.claim("k-a", commitment_id="c-a"))
    h.add("accusation", b.accusation("a-z", commitment_id="c-a"))
    h.add("accusation", b.accusation("a-a", commitment_id="c-a"))
    result = answer(h)
    assert commitment_ids(result, "AA") == ["c-z", "c-a", "c-m"]
    item = commitment(result, "c-a")
    assert item["stages"] == ["s-z", "s-a"]
    assert item["claims"] == ["k-z", "k-a"]
    assert item["open_accusations"] == ["a-z", "a-a"]
    assert item["delivered"]["reported"] == 6


def test_a_stage_retracted_and_its_twin_transfers_leave_no_trace() -> None:
    h = History()
    h.add("commitment", b.commitment("c1"))
    twin = h.add("stage", b.stage("s1", transfers=[b.transfer("c1", count=1), b.transfer("c1", count=2)]))
    h.add("stage", b.stage("s2", transfers=[b.transfer("c1", count=4)]))
    h.retract(twin)
    item = commitment(answer(h), "c1")
    assert item["stages"] == ["s2"] and item["delivered"]["reported"] == 4
