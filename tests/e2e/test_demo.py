"""`pactwatch demo` loads the Istanbul agreement as API.md's demo row tells it, once."""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.conftest import BACKENDS, drop_postgres_database, fresh_postgres_database

DEMO = "istanbul-2025"


def pactwatch(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).parent / "pactwatch"
    env = {**os.environ, "PACTWATCH_DATABASE_URL": database_url}
    return subprocess.run([str(script), *args], env=env, capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module", params=BACKENDS)
def loaded(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, TestClient]]:
    """The demo loaded once per database by the real CLI, then read through the API."""
    name = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('demo')}/pactwatch.db"
    else:
        url, name = fresh_postgres_database()
    try:
        done = pactwatch("demo", database_url=url)
        assert done.returncode == 0, done.stderr
        with TestClient(create_app(Settings(database_url=url), workers=False)) as client:
            yield url, client
    finally:
        if name is not None:
            drop_postgres_database(name)


def events(client: TestClient) -> list[dict[str, Any]]:
    answer = client.get(f"/v1/agreements/{DEMO}/events")
    assert answer.status_code == 200
    return answer.json()["items"]


def of_type(items: list[dict[str, Any]], event_type: str) -> list[dict[str, Any]]:
    return [e["data"] for e in items if e["type"] == event_type]


def test_the_demo_declares_russia_and_ukraine(loaded: tuple[str, TestClient]) -> None:
    _, client = loaded
    agreement = client.get(f"/v1/agreements/{DEMO}").json()
    assert agreement["parties"] == [{"code": "RU", "name": "Russia"}, {"code": "UA", "name": "Ukraine"}]
    assert [a["id"] for a in client.get("/v1/agreements").json()["items"]] == [DEMO]


def test_the_demo_records_both_sides_commitments(loaded: tuple[str, TestClient]) -> None:
    _, client = loaded
    commitments = of_type(events(client), "CommitmentMade")
    for obligor, beneficiary in (("RU", "UA"), ("UA", "RU")):
        mine = [c for c in commitments if (c["obligor"], c["beneficiary"]) == (obligor, beneficiary)]
        assert any(c["action"] == "release_prisoners" for c in mine), obligor
        assert len(mine) >= 2, obligor


def test_the_640_name_list_is_a_claim_by_russia_citing_its_prisoner_commitment(
        loaded: tuple[str, TestClient]) -> None:
    _, client = loaded
    items = events(client)
    commitments = {c["commitment_id"]: c for c in of_type(items, "CommitmentMade")}
    claims = [c for c in of_type(items, "ProgressClaimed") if c["count"] == 640]
    assert len(claims) == 1
    claim = claims[0]
    assert claim["party"] == "RU"
    cited = commitments[claim["commitment_id"]]
    assert (cited["obligor"], cited["action"]) == ("RU", "release_prisoners")
    assert not [t for s in of_type(items, "StageCompleted") for t in s["transfers"] if t["count"] == 640]
    compliance = client.get(f"/v1/agreements/{DEMO}/compliance").json()
    shown = next(c for c in compliance["parties"]["RU"]["commitments"] if c["commitment_id"] == cited["commitment_id"])
    assert claim["claim_id"] in shown["claims"]
    assert shown["delivered"]["reported"] == 0


def test_the_demo_records_the_accusations_and_the_answer(loaded: tuple[str, TestClient]) -> None:
    _, client = loaded
    items = events(client)
    accusations = {a["accusation_id"]: a for a in of_type(items, "AccusationMade")}
    assert {a["accuser"] for a in accusations.values()} == {"RU", "UA"}
    answers = of_type(items, "AccusationAnswered")
    assert answers
    for answer in answers:
        assert answer["accusation_id"] in accusations
        assert answer["by"] == accusations[answer["accusation_id"]]["accused"]


def test_the_first_stage_has_both_transfers_undisclosed(loaded: tuple[str, TestClient]) -> None:
    _, client = loaded
    stages = of_type(events(client), "StageCompleted")
    assert stages
    first = stages[0]
    assert {(t["from"], t["to"]) for t in first["transfers"]} == {("RU", "UA"), ("UA", "RU")}
    assert all(t["count_basis"] == "undisclosed" and t["count"] is None for t in first["transfers"])
    compliance = client.get(f"/v1/agreements/{DEMO}/compliance").json()
    for party in ("RU", "UA"):
        delivered = [c["delivered"] for c in compliance["parties"][party]["commitments"] if c["stages"]]
        assert delivered and all(d["undisclosed_transfers"] == 1 and d["reported"] == 0 for d in delivered)


def test_every_demo_event_has_a_source(loaded: tuple[str, TestClient]) -> None:
    _, client = loaded
    for event in events(client):
        source = event["source"]
        assert source["publisher"].strip(), event["type"]
        assert source["url"] or source["quote"], event["type"]


def test_a_second_run_records_nothing(loaded: tuple[str, TestClient]) -> None:
    url, client = loaded
    before = client.get("/v1/events", params={"limit": 1000}).json()["items"]
    again = pactwatch("demo", database_url=url)
    assert again.returncode == 0, again.stderr
    assert client.get("/v1/events", params={"limit": 1000}).json()["items"] == before
