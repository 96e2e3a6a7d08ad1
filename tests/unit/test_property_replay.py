"""Property: random valid command sequences give the same compliance and timeline from the live read model
as from a fresh replay of the store, however the projection runs are interleaved and restarted."""
from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.migrate import upgrade
from app.runtime import Runtime, build
from app.settings import Settings
from domain.errors import DomainError
from projections import reader, replay
from projections.replay import Filters
from projections.store import ReadModels, active_generation, stored_state
from tests import builders

PARTIES = ["AA", "BB", "CC"]
TODAY = date.today()
DAYS = [(TODAY + timedelta(days=d)).isoformat() for d in (-400, -30, -1, 0, 1, 30)]
UNCORRECTABLE = {"AgreementConcluded", "RecordCorrected"}
_agreements = itertools.count()


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    """The write path and read models on a fresh database, with no worker: the test runs the projections."""
    upgrade(settings.database_url)
    rt = build(settings)
    try:
        yield rt
    finally:
        rt.close()


class Model:
    """What the test knows of one agreement, to make only commands that are valid."""

    def __init__(self, runtime: Runtime, agreement_id: str) -> None:
        self.runtime = runtime
        self.id = agreement_id
        self.commitments: dict[str, tuple[str, str]] = {}
        self.accusations: dict[str, bool] = {}  # live ones -> resolved?
        self.correctable: dict[str, tuple[str, str]] = {}  # event id -> (type, created id)
        self.resolutions: dict[str, str] = {}  # event id -> accusation id
        self.ids = itertools.count()
        self.refused = 0

    def new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self.ids)}"

    def write(self, kind: str, body: dict[str, Any], created: str = "", **path_ids: str) -> dict[str, Any] | None:
        try:
            env = self.runtime.writer.record(self.id, kind, json.dumps(body).encode(), "tester", **path_ids)
        except DomainError:
            self.refused += 1
            return None
        if env["type"] not in UNCORRECTABLE:
            self.correctable[env["id"]] = (env["type"], created)
        return env


def step(draw: Any, model: Model, runners: list[ReadModels]) -> None:
    """One random command that the model expects to be valid, or one projection run."""
    live = sorted(model.commitments)
    accusations = sorted(model.accusations)
    choices = ["commitment", "claim", "accusation", "project"]
    choices += ["stage", "fulfilment"] if live else []
    choices += ["response", "resolution"] if accusations else []
    choices += ["correction"] if model.correctable else []
    kind = draw(st.sampled_from(choices))
    day = draw(st.sampled_from(DAYS))
    if kind == "project":
        draw(st.sampled_from(runners)).run_once(limit=draw(st.integers(1, 5)))
    elif kind == "commitment":
        obligor, beneficiary = draw(st.permutations(PARTIES))[:2]
        qualifier = draw(st.sampled_from(["exact", "at_least", "all", "unspecified"]))
        value = draw(st.integers(0, 30)) if qualifier in ("exact", "at_least") else None
        swapped = [c for c in live if model.commitments[c] == (beneficiary, obligor)]
        cid = model.new_id("c")
        body = builders.commitment(cid, obligor, beneficiary, qualifier, value,
                                   due_by=draw(st.sampled_from([None, *DAYS])),
                                   made_on=draw(st.sampled_from([None, day])),
                                   reciprocal_of=draw(st.sampled_from([None, *swapped])))
        if model.write("commitment", body, cid):
            model.commitments[cid] = (obligor, beneficiary)
    elif kind == "stage":
        transfers = []
        for cid in draw(st.lists(st.sampled_from(live), min_size=1, max_size=3)):
            basis = draw(st.sampled_from(["reported", "approximate", "undisclosed"]))
            count = None if basis == "undisclosed" else draw(st.integers(0, 20))
            transfers.append(builders.transfer(cid, *model.commitments[cid], count=count, basis=basis))
        model.write("stage", builders.stage(model.new_id("s"), day, transfers))
    elif kind == "claim":
        model.write("claim", builders.claim(model.new_id("k"), draw(st.sampled_from(PARTIES)), made_on=day,
                                            commitment_id=draw(st.sampled_from([None, *live])),
                                            count=draw(st.sampled_from([None, 7]))))
    elif kind == "accusation":
        accuser, accused = draw(st.permutations(PARTIES))[:2]
        aid = model.new_id("a")
        body = builders.accusation(aid, accuser, accused, made_on=day,
                                   commitment_id=draw(st.sampled_from([None, *live])))
        if model.write("accusation", body, aid):
            model.accusations[aid] = False
    elif kind == "response":
        aid = draw(st.sampled_from(accusations))
        model.write("response", builders.response(draw(st.sampled_from(PARTIES)), made_on=day), accusation_id=aid)
    elif kind == "resolution":
        open_ones = [a for a in accusations if not model.accusations[a]]
        if open_ones:
            aid = draw(st.sampled_from(open_ones))
            env = model.write("resolution", builders.resolution(made_on=day), aid, accusation_id=aid)
            if env:
                model.accusations[aid] = True
    elif kind == "fulfilment":
        declared = draw(st.lists(st.sampled_from(PARTIES), min_size=1, max_size=3, unique=True))
        model.write("fulfilment", builders.declaration(*declared, made_on=day),
                    commitment_id=draw(st.sampled_from(live)))
    elif kind == "correction":
        event_id = draw(st.sampled_from(list(model.correctable)))  # in recording order: ids are random
        event_type, created = model.correctable[event_id]
        if model.write("correction", builders.correction(event_id, made_on=day)):
            del model.correctable[event_id]
            if event_type == "CommitmentMade":
                model.commitments.pop(created, None)
            elif event_type == "AccusationMade":
                model.accusations.pop(created, None)
            elif event_type == "AccusationResolved" and created in model.accusations:
                model.accusations[created] = False


def normal(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True))


@settings(max_examples=25, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(data=st.data())
def test_the_live_read_model_equals_a_fresh_replay(runtime: Runtime, data: st.DataObject) -> None:
    agreement_id = f"pact-{next(_agreements)}"
    runtime.writer.conclude(json.dumps(builders.agreement(agreement_id, parties=[
        {"code": code, "name": code.title()} for code in PARTIES])).encode(), "tester")
    model = Model(runtime, agreement_id)
    # A second runner over the same tables stands for the projection worker after a restart (empty cache).
    runners = [runtime.read_models, ReadModels(runtime.writer.datastore)]
    for _ in range(data.draw(st.integers(1, 30), label="steps")):
        step(data.draw, model, runners)
    data.draw(st.sampled_from(runners), label="last runner").catch_up()

    today = TODAY.isoformat()
    with runtime.engine.connect() as conn:
        envelopes = reader.agreement_events(conn, agreement_id)
        live_state = stored_state(conn, active_generation(conn), agreement_id)
        live_timeline = runtime.read_models.timeline(conn, agreement_id, None, None, None)
    replayed = replay.fold(envelopes, agreement_id, Filters())
    assert live_state["concluded"]
    assert live_state["version"] == envelopes[-1]["version"] == len(envelopes)
    assert normal(live_state) == normal(replayed)
    assert normal(replay.answer(live_state, agreement_id, Filters(), today)) == normal(
        replay.answer(replayed, agreement_id, Filters(), today))
    assert live_timeline == replay.timeline_items(envelopes, Filters())
    assert model.refused == 0, "the model made a command the domain refused: the test would prove less"
