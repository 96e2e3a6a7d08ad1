"""An unexpected failure answers a bare problem+json 500 and logs no traceback and no message."""
from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient


def test_an_unexpected_error_is_a_problem_without_details_or_traceback(
        client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> list[object]:
        raise RuntimeError("password=hunter2 in a failing query")

    monkeypatch.setattr(client.app.state.runtime.reader, "agreements", broken)
    quiet = TestClient(client.app, raise_server_exceptions=False)
    with caplog.at_level(logging.INFO):
        answer = quiet.get("/v1/agreements", headers={"X-Request-ID": "trace-500"})
    assert answer.status_code == 500
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["x-request-id"] == "trace-500"
    assert "hunter2" not in answer.text and "Traceback" not in answer.text
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert "RuntimeError" in logged
    assert "hunter2" not in logged and "Traceback" not in logged
    assert all(r.exc_info is None for r in caplog.records)
