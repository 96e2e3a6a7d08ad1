"""Tamper evidence, rebuild with proof, export/import: through the API, the CLI and the database."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select, update

from projections.schema import audit_chain, events
from tests import builders as b

ZERO = "0" * 64


def canonical_hash(envelope: dict[str, Any]) -> str:
    body = {k: v for k, v in envelope.items() if k not in ("position", "hash")}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
                          .encode()).hexdigest()


def record_small_history(client: TestClient, agreement_id: str = "accord") -> list[dict[str, Any]]:
    base = f"/v1/agreements/{agreement_id}"
    steps = [
        ("/v1/agreements", b.agreement(agreement_id, title="Accord « ünïcode » ✓")),
        (f"{base}/commitments", b.commitment("c1")),
        (f"{base}/commitments", b.commitment("c2", "BB", "AA", reciprocal_of="c1")),
        (f"{base}/stages", b.stage("s1", transfers=[b.transfer("c1", count=60)])),
        (f"{base}/accusations", b.accusation("a1", commitment_id="c1")),
        (f"{base}/accusations/a1/responses", b.response()),
    ]
    envelopes = []
    for path, body in steps:
        answer = client.post(path, json=body)
        assert answer.status_code == 201, answer.text
        envelopes.append(answer.json())
    answer = client.post(f"{base}/corrections", json=b.correction(envelopes[3]["id"]))
    assert answer.status_code == 201
    envelopes.append(answer.json())
    return envelopes


def test_every_envelope_hashes_canonically_and_chains(client: TestClient) -> None:
    written = record_small_history(client)
    served = client.get("/v1/events", params={"limit": 1000}).json()["items"]
    assert [e["id"] for e in served] == [e["id"] for e in written]
    assert served == written
    assert served[0]["prev_hash"] == ZERO
    for envelope in served:
        assert envelope["hash"] == canonical_hash(envelope)
    for before, after in zip(served, served[1:]):
        assert after["prev_hash"] == before["hash"]
    head = client.get("/v1/audit/head").json()
    assert head == {"position": served[-1]["position"], "hash": served[-1]["hash"]}


def test_head_of_an_empty_store_is_zero(client: TestClient) -> None:
    assert client.get("/v1/audit/head").json() == {"position": 0, "hash": ZERO}
    verified = client.get("/v1/audit/verify").json()
    assert verified["ok"] is True and verified["events_checked"] == 0


def test_verify_finds_one_changed_byte_in_the_stored_event(client: TestClient, database_url: str) -> None:
    written = record_small_history(client)
    assert client.get("/v1/audit/verify").json() == {
        "ok": True, "events_checked": len(written),
        "head": {"position": written[-1]["position"], "hash": written[-1]["hash"]}, "first_bad_position": None}
    target = written[2]["position"]
    engine = create_engine(database_url)
    with engine.begin() as conn:
        state = bytes(conn.execute(select(events.c.state).where(events.c.id == target)).scalar())
        tampered = state.replace(b'"AA"', b'"AB"', 1)
        assert tampered != state and len(tampered) == len(state)
        conn.execute(update(events).where(events.c.id == target).values(state=tampered))
    engine.dispose()
    verified = client.get("/v1/audit/verify").json()
    assert verified["ok"] is False
    assert verified["first_bad_position"] == target


def test_verify_finds_a_rewritten_hash_in_the_chain(client: TestClient, database_url: str) -> None:
    written = record_small_history(client)
    target = written[4]["position"]
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(update(audit_chain).where(audit_chain.c.position == target).values(hash="f" * 64))
    engine.dispose()
    assert client.get("/v1/audit/verify").json()["first_bad_position"] == target


def test_verify_needs_a_reader_and_head_is_public(client: TestClient) -> None:
    anonymous = TestClient(client.app)
    assert anonymous.get("/v1/audit/verify").status_code == 401
    assert anonymous.get("/v1/audit/head").status_code == 200


def test_rebuild_replays_history_into_identical_read_models(client: TestClient) -> None:
    written = record_small_history(client)
    before = client.get("/v1/agreements/accord/compliance").json()
    timeline_before = client.get("/v1/agreements/accord/timeline").json()
    client.app.state.runtime.read_models.catch_up()
    answer = client.post("/v1/admin/projections/rebuild")
    assert answer.status_code == 200
    assert answer.json() == {"events_replayed": len(written), "identical": True}
    assert client.get("/v1/agreements/accord/compliance").json() == before
    assert client.get("/v1/agreements/accord/timeline").json() == timeline_before
    client.post("/v1/agreements/accord/claims", json=b.claim("k9", commitment_id="c1"))
    after = client.get("/v1/agreements/accord/compliance").json()
    assert after["parties"]["AA"]["commitments"][0]["claims"] == ["k9"]


def test_rebuild_reports_a_live_model_that_drifted_from_history(client: TestClient, database_url: str) -> None:
    from projections.schema import rm_compliance

    record_small_history(client)
    client.app.state.runtime.read_models.catch_up()
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(update(rm_compliance).values(view='{"forged": true}'))
    engine.dispose()
    assert client.post("/v1/admin/projections/rebuild").json()["identical"] is False
    assert client.get("/v1/agreements/accord/compliance").json()["parties"]["AA"]["summary"]["commitments"] == 1


def test_rebuild_needs_the_admin_role(client: TestClient) -> None:
    assert TestClient(client.app).post("/v1/admin/projections/rebuild").status_code == 401


def cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PACTWATCH_DATABASE_URL": database_url}
    return subprocess.run([sys.executable, "-m", "app.cli", *args], env=env, capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).parents[2])


def test_export_then_import_gives_the_same_log_hash_for_hash(client: TestClient, database_url: str,
                                                             second_database: str, tmp_path: Path) -> None:
    written = record_small_history(client)
    record_small_history(client, "second-accord")
    exported = tmp_path / "log.jsonl"
    assert cli(database_url, "export", str(exported)).returncode == 0
    lines = exported.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines][: len(written)] == written
    result = cli(second_database, "import", str(exported))
    assert result.returncode == 0, result.stderr
    from app.audit import export_log
    from projections import ledger

    engine = create_engine(second_database)
    again = tmp_path / "again.jsonl"
    with engine.connect() as conn, open(again, "w", encoding="utf-8") as out:
        assert ledger.verify(conn)["ok"] is True
        export_log(conn, out)
    engine.dispose()
    assert again.read_bytes() == exported.read_bytes()


def export_in_process(client: TestClient, path: Path) -> None:
    from app.audit import export_log

    with client.app.state.runtime.engine.connect() as conn, open(path, "w", encoding="utf-8") as out:
        export_log(conn, out)


def test_import_refuses_a_non_empty_store(client: TestClient, database_url: str, tmp_path: Path) -> None:
    record_small_history(client)
    exported = tmp_path / "log.jsonl"
    export_in_process(client, exported)
    result = cli(database_url, "import", str(exported))
    assert result.returncode == 1 and "not empty" in result.stderr


@pytest.mark.parametrize("damage, line, words", [
    (lambda lines: lines[:2] + ["{not json"] + lines[3:], 3, "malformed"),
    (lambda lines: lines[:3] + [lines[3].replace('"AA"', '"AB"', 1)] + lines[4:], 4, "hash"),
    (lambda lines: lines[:1] + lines[2:], 2, "version"),
    (lambda lines: lines[:-1] + [lines[-1][: len(lines[-1]) // 2]], 7, "truncated"),
])
def test_import_refuses_a_damaged_file_naming_the_line(client: TestClient, second_database: str, tmp_path: Path,
                                                       damage: Any, line: int, words: str) -> None:
    from app.audit import ImportRefused, import_log
    from app.migrate import upgrade
    from app.runtime import build
    from app.settings import Settings

    record_small_history(client)
    exported = tmp_path / "log.jsonl"
    export_in_process(client, exported)
    lines = exported.read_text(encoding="utf-8").split("\n")[:-1]
    text = "\n".join(damage(lines)) + ("" if words == "truncated" else "\n")
    exported.write_text(text, encoding="utf-8")
    upgrade(second_database)
    runtime = build(Settings(database_url=second_database))
    try:
        with pytest.raises(ImportRefused) as refused:
            import_log(runtime.app, str(exported))
        assert refused.value.line == line and words in str(refused.value)
        with runtime.engine.connect() as conn:
            assert conn.execute(select(events.c.id)).first() is None
    finally:
        runtime.close()


def test_audit_verify_cli_exits_1_naming_the_first_bad_position(client: TestClient, database_url: str) -> None:
    written = record_small_history(client)
    assert cli(database_url, "audit", "verify").returncode == 0
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(update(audit_chain).where(audit_chain.c.position == written[1]["position"])
                     .values(prev_hash="1" * 64))
    engine.dispose()
    result = cli(database_url, "audit", "verify")
    assert result.returncode == 1
    assert str(written[1]["position"]) in result.stderr


def test_import_sends_no_webhooks_for_the_imported_history(client: TestClient, database_url: str,
                                                            second_database: str, tmp_path: Path) -> None:
    from app.main import create_app
    from app.settings import Settings
    from tests.conftest import ADMIN_TOKEN
    from tests.e2e.webhook_receiver import Receiver, wait_until

    record_small_history(client)
    exported = tmp_path / "log.jsonl"
    export_in_process(client, exported)
    receiver = Receiver()
    settings = Settings(database_url=second_database, admin_token=ADMIN_TOKEN, webhook_allow_private=True)
    try:
        with TestClient(create_app(settings)) as other:
            other.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
            assert other.post("/v1/webhooks", json={"url": receiver.url}).status_code == 201
            assert cli(second_database, "import", str(exported)).returncode == 0
            new = other.post("/v1/agreements/accord/claims", json=b.claim("k-after-import")).json()
            wait_until(lambda: receiver.delivered(), "a delivery after the import")
            assert [json.loads(r.body)["data"]["id"] for r in receiver.delivered()] == [new["id"]]
    finally:
        receiver.stop()
