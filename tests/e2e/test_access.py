"""Access: API keys made by the CLI, roles, the admin token, public reads, and what errors never show."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, func, select
from typer.testing import CliRunner

from app.cli import cli
from app.main import create_app
from app.settings import Settings
from projections.schema import api_keys, events
from tests import builders
from tests.conftest import ADMIN_TOKEN

PACTWATCH = str(Path(sys.executable).with_name("pactwatch"))
CHALLENGE = "Bearer"
PUBLIC_READS = ["/v1/agreements", "/v1/agreements/accord", "/v1/agreements/accord/compliance",
                "/v1/agreements/accord/timeline", "/v1/agreements/accord/events", "/v1/events", "/v1/audit/head"]


def pactwatch(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The installed console script, as an operator runs it."""
    env = {**os.environ, "PACTWATCH_DATABASE_URL": database_url}
    return subprocess.run([PACTWATCH, *args], env=env, capture_output=True, text=True, timeout=120)


def invoke(database_url: str, *args: str) -> Any:
    """The same command line, in this process (quicker, for the refusals)."""
    return CliRunner().invoke(cli, list(args), env={"PACTWATCH_DATABASE_URL": database_url})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def event_count(client: TestClient) -> int:
    with client.app.state.runtime.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(events)).scalar()


@pytest.fixture
def accord(client: TestClient) -> TestClient:
    assert client.post("/v1/agreements", json=builders.agreement()).status_code == 201
    assert client.post("/v1/agreements/accord/commitments", json=builders.commitment()).status_code == 201
    return client


@pytest.fixture
def keys(accord: TestClient) -> dict[str, str]:
    """One key of each role, made through the runtime the app uses."""
    return {role: accord.app.state.runtime.keys.create(f"{role}-key", role) for role in ("reader", "recorder", "admin")}


@pytest.fixture
def private(settings: Settings) -> Iterator[TestClient]:
    """The app with PACTWATCH_PUBLIC_READ=false, as the environment sets it."""
    env = {"PACTWATCH_DATABASE_URL": settings.database_url, "PACTWATCH_ADMIN_TOKEN": ADMIN_TOKEN,
           "PACTWATCH_PUBLIC_READ": "false"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        private_settings = Settings()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    assert private_settings.public_read is False
    with TestClient(create_app(private_settings)) as client:
        assert client.post("/v1/agreements", json=builders.agreement(), headers=bearer(ADMIN_TOKEN)).status_code == 201
        yield client


# Keys through the real command line.

def test_keys_made_by_the_cli_work_with_their_roles_until_revoked(database_url: str) -> None:
    made = pactwatch(database_url, "keys", "create", "field-office", "--role", "recorder")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip().splitlines()[-1]
    assert token.strip() == token and " " not in token
    assert token not in made.stderr
    reader = invoke(database_url, "keys", "create", "observer", "--role", "reader")
    reader_token = reader.output.strip().splitlines()[-1]

    listed = invoke(database_url, "keys", "list")
    assert listed.exit_code == 0
    rows = [line.split("\t") for line in listed.output.strip().splitlines()]
    assert [(r[0], r[1], r[-1]) for r in rows] == [("field-office", "recorder", "active"),
                                                   ("observer", "reader", "active")]
    assert token not in listed.output and reader_token not in listed.output

    settings = Settings(database_url=database_url)
    with TestClient(create_app(settings, migrate=False)) as client:
        written = client.post("/v1/agreements", json=builders.agreement(), headers=bearer(token))
        assert written.status_code == 201
        assert written.json()["recorded_by"] == "field-office"
        refused = client.post("/v1/agreements", json=builders.agreement("other"), headers=bearer(reader_token))
        assert refused.status_code == 403
        assert client.get("/v1/audit/verify", headers=bearer(reader_token)).status_code == 200

        revoked = invoke(database_url, "keys", "revoke", "field-office")
        assert revoked.exit_code == 0, revoked.output
        after = client.post("/v1/agreements", json=builders.agreement("later"), headers=bearer(token))
        assert after.status_code == 401
        assert after.headers["WWW-Authenticate"] == CHALLENGE
        assert client.get("/v1/agreements", headers=bearer(token)).status_code == 401
        assert client.get("/v1/agreements", headers=bearer(reader_token)).status_code == 200

    listed = pactwatch(database_url, "keys", "list")
    assert "field-office\trecorder" in listed.stdout and "revoked" in listed.stdout


def test_no_token_is_stored_in_clear(database_url: str, tmp_path: Path) -> None:
    made = invoke(database_url, "keys", "create", "vault", "--role", "admin")
    assert made.exit_code == 0, made.output
    token = made.output.strip().splitlines()[-1]
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(api_keys)).all()
    finally:
        engine.dispose()
    assert len(rows) == 1
    stored = " ".join(str(value) for value in rows[0])
    assert token not in stored and token[3:] not in stored
    assert rows[0].token_hash == hashlib.sha256(token.encode()).hexdigest()
    if database_url.startswith("sqlite"):
        path = Path(database_url.removeprefix("sqlite:///"))
        for file in path.parent.glob(path.name + "*"):
            assert token[3:].encode() not in file.read_bytes()


def test_tokens_carry_at_least_32_random_bytes(database_url: str) -> None:
    tokens = {invoke(database_url, "keys", "create", f"k{i}", "--role", "reader").output.strip().splitlines()[-1]
              for i in range(3)}
    assert len(tokens) == 3
    for token in tokens:
        assert len(token.removeprefix("pw_")) >= 43  # 32 bytes in URL-safe base64


def test_the_cli_refuses_what_it_cannot_do(database_url: str) -> None:
    for args, why in [(["keys", "create", "admin", "--role", "admin"], "reserved"),
                      (["keys", "create", "Admin", "--role", "reader"], "reserved"),
                      (["keys", "create", "someone", "--role", "owner"], "role"),
                      (["keys", "create", "two words", "--role", "reader"], "no spaces"),
                      (["keys", "create", "x" * 65, "--role", "reader"], "64"),
                      (["keys", "revoke", "nobody"], "no active key")]:
        answer = invoke(database_url, *args)
        assert answer.exit_code != 0, args
        assert why in answer.output, args
    assert invoke(database_url, "keys", "list").output.strip() == ""


def test_names_are_unique_even_after_revocation(database_url: str) -> None:
    assert invoke(database_url, "keys", "create", "clerk", "--role", "reader").exit_code == 0
    assert invoke(database_url, "keys", "revoke", "clerk").exit_code == 0
    again = invoke(database_url, "keys", "create", "clerk", "--role", "admin")
    assert again.exit_code != 0 and "exists already" in again.output
    assert invoke(database_url, "keys", "revoke", "clerk").exit_code != 0


# Who may do what.

def test_anonymous_unknown_and_malformed_credentials_cannot_write(accord: TestClient, anonymous: TestClient) -> None:
    before = event_count(accord)
    for headers in [{}, bearer("pw_not-a-key"), bearer(ADMIN_TOKEN + "x"), {"Authorization": "Basic YWRtaW46"},
                    {"Authorization": "Bearer"}, {"Authorization": f"Token {ADMIN_TOKEN}"}]:
        answer = anonymous.post("/v1/agreements/accord/claims", json=builders.claim(), headers=headers)
        assert answer.status_code == 401, headers
        assert answer.headers["WWW-Authenticate"] == CHALLENGE
        assert answer.headers["content-type"] == "application/problem+json"
    assert event_count(accord) == before


def test_each_role_does_what_it_may_and_no_more(accord: TestClient, anonymous: TestClient,
                                                keys: dict[str, str]) -> None:
    claim = "/v1/agreements/accord/claims"
    assert anonymous.post(claim, json=builders.claim("k1"), headers=bearer(keys["reader"])).status_code == 403
    by_recorder = anonymous.post(claim, json=builders.claim("k2"), headers=bearer(keys["recorder"]))
    assert by_recorder.status_code == 201 and by_recorder.json()["recorded_by"] == "recorder-key"
    by_admin_key = anonymous.post(claim, json=builders.claim("k3"), headers=bearer(keys["admin"]))
    assert by_admin_key.status_code == 201 and by_admin_key.json()["recorded_by"] == "admin-key"
    by_admin_token = anonymous.post(claim, json=builders.claim("k4"), headers=bearer(ADMIN_TOKEN))
    assert by_admin_token.status_code == 201 and by_admin_token.json()["recorded_by"] == "admin"

    assert anonymous.get("/v1/audit/verify").status_code == 401
    assert anonymous.get("/v1/audit/verify", headers=bearer(keys["reader"])).status_code == 200
    rebuild = "/v1/admin/projections/rebuild"
    assert anonymous.post(rebuild, headers=bearer(keys["reader"])).status_code == 403
    assert anonymous.post(rebuild, headers=bearer(keys["recorder"])).status_code == 403
    assert anonymous.post(rebuild, headers=bearer(keys["admin"])).status_code == 200
    assert event_count(accord) == 2 + 3


def test_public_reads_are_open_to_anonymous_callers_by_default(accord: TestClient, anonymous: TestClient) -> None:
    for path in PUBLIC_READS:
        assert anonymous.get(path).status_code == 200, path


def test_an_unknown_or_revoked_token_is_401_on_public_reads_too(accord: TestClient, anonymous: TestClient,
                                                                keys: dict[str, str]) -> None:
    accord.app.state.runtime.keys.revoke("reader-key")
    for token in ["pw_unknown", keys["reader"]]:
        for path in PUBLIC_READS:
            answer = anonymous.get(path, headers=bearer(token))
            assert answer.status_code == 401, path
            assert answer.headers["WWW-Authenticate"] == CHALLENGE


def test_public_reads_can_be_switched_off(private: TestClient) -> None:
    reader = private.app.state.runtime.keys.create("auditor", "reader")
    for path in PUBLIC_READS:
        anonymous = private.get(path)
        assert anonymous.status_code == 401, path
        assert anonymous.headers["WWW-Authenticate"] == CHALLENGE
        assert private.get(path, headers=bearer(reader)).status_code == 200, path
    for page in ("/", "/agreements/accord"):  # the dashboard follows the same switch
        assert private.get(page).status_code == 401, page
        assert private.get(page, headers=bearer(reader)).status_code == 200, page
    assert private.get("/healthz").status_code == 200


# What every answer carries, and what no answer or log line shows.

def test_every_answer_carries_the_security_headers(accord: TestClient, anonymous: TestClient) -> None:
    answers = [accord.get("/v1/agreements"), accord.post("/v1/agreements/accord/claims", json=builders.claim()),
               anonymous.post("/v1/agreements/accord/claims", json=builders.claim("k2")),
               accord.get("/v1/agreements/nowhere"), accord.post("/v1/agreements/accord/claims", content=b"{"),
               accord.post("/v1/agreements/accord/claims", content=b" " * (1024 * 1024 + 1)),
               accord.get("/healthz"), accord.get("/openapi.json")]
    for answer in answers:
        assert answer.headers["X-Content-Type-Options"] == "nosniff", answer.status_code
        assert answer.headers["X-Frame-Options"] == "DENY"
        assert answer.headers["Referrer-Policy"] == "no-referrer"
        assert answer.headers["Cache-Control"] == "no-store"
        assert "default-src 'none'" in answer.headers["Content-Security-Policy"]
    assert sorted({a.status_code for a in answers}) == [200, 201, 401, 404, 413, 422]


def test_errors_and_logs_show_no_token_and_no_stack_trace(accord: TestClient, anonymous: TestClient,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    secret = "pw_" + "s3cret" * 8
    caplog.set_level(logging.DEBUG)
    answers = [anonymous.post("/v1/agreements/accord/claims", json=builders.claim(), headers=bearer(secret)),
               anonymous.get("/v1/agreements", headers=bearer(secret)),
               anonymous.get("/v1/agreements", headers={"Authorization": f"Basic {secret}"}),
               accord.post("/v1/agreements/accord/claims", content=b'{"claim_id": ' + b"[" * 5000),
               accord.post("/v1/agreements/accord/claims",
                           content=json.dumps({**builders.claim(), "statement": "\ud800"}).encode())]
    logged = "\n".join(r.getMessage() + (str(r.exc_info) if r.exc_info else "") for r in caplog.records)
    for answer in answers:
        assert 400 <= answer.status_code < 500
        assert secret not in answer.text and ADMIN_TOKEN not in answer.text
        assert "Traceback" not in answer.text and 'File "' not in answer.text
    assert secret not in logged and ADMIN_TOKEN not in logged
    assert "Traceback" not in caplog.text
