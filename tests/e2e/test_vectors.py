"""The worked examples of the compliance rules (contract vectors), through the HTTP API."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

VECTORS = json.loads((Path(__file__).parent.parent / "data" / "vectors.json").read_text())["scenarios"]


def record_scenario(client: TestClient, scenario: dict[str, Any]) -> list[dict[str, Any]]:
    envelopes: list[dict[str, Any]] = []
    for step in scenario["steps"]:
        body = dict(step["body"])
        if step["kind"] == "correction":
            body["event_id"] = envelopes[step["retracts_step"]]["id"]
        answer = client.post(step["path"], json=body)
        assert answer.status_code == 201, (step, answer.text)
        envelopes.append(answer.json())
    return envelopes


@pytest.mark.parametrize("scenario", VECTORS, ids=[s["agreement_id"] for s in VECTORS])
def test_compliance_answers_match_the_contract_vectors(client: TestClient, scenario: dict[str, Any]) -> None:
    record_scenario(client, scenario)
    for query in scenario["queries"]:
        answer = client.get(f"/v1/agreements/{scenario['agreement_id']}/compliance", params=query["params"])
        assert answer.status_code == 200
        got = answer.json()
        for key, expected in query["expected"].items():
            assert got[key] == expected, (query["params"], key)


@pytest.mark.parametrize("scenario", VECTORS[:1], ids=[s["agreement_id"] for s in VECTORS[:1]])
def test_live_read_model_equals_a_fresh_replay(client: TestClient, scenario: dict[str, Any]) -> None:
    record_scenario(client, scenario)
    runtime = client.app.state.runtime
    runtime.read_models.catch_up()
    live = client.get(f"/v1/agreements/{scenario['agreement_id']}/compliance").json()
    replayed = client.get(f"/v1/agreements/{scenario['agreement_id']}/compliance",
                          params={"version": live["version"]}).json()
    assert live["parties"] == replayed["parties"]
    assert live["version"] == replayed["version"]
