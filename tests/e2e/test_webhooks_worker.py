"""`pactwatch worker webhooks` as a real process: killed mid-delivery, restarted, and (PostgreSQL) taken over."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests import builders
from tests.conftest import ADMIN_TOKEN
from tests.e2e.webhook_receiver import Receiver, wait_until

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def api(database_url: str) -> Iterator[TestClient]:
    """The API alone: no worker runs in this process."""
    settings = Settings(database_url=database_url, admin_token=ADMIN_TOKEN, webhook_allow_private=True)
    with TestClient(create_app(settings, workers=False)) as test_client:
        test_client.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
        yield test_client


class Workers:
    """Starts `pactwatch worker webhooks` processes; ends them all at teardown."""

    def __init__(self, database_url: str, logs: Path) -> None:
        self.env = dict(os.environ, PACTWATCH_DATABASE_URL=database_url, PACTWATCH_WEBHOOK_ALLOW_PRIVATE="true",
                        PACTWATCH_WEBHOOK_RETRY_SCHEDULE="0.2,0.5,1,2,4")
        self.logs = logs
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"worker-{len(self.processes)}.log", "wb")  # noqa: SIM115
        process = subprocess.Popen([sys.executable, "-m", "app.cli", "worker", "webhooks"], cwd=ROOT, env=self.env,
                                   stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.processes.append(process)
        return process

    def log(self, n: int) -> bytes:
        return (self.logs / f"worker-{n}.log").read_bytes()

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)


@pytest.fixture
def workers(database_url: str, tmp_path: Path) -> Iterator[Workers]:
    started = Workers(database_url, tmp_path)
    yield started
    started.close()


def record(api: TestClient, count: int) -> list[int]:
    positions = [api.post("/v1/agreements", json=builders.agreement()).json()["position"]]
    for n in range(1, count):
        positions.append(api.post("/v1/agreements/accord/commitments", json=builders.commitment(f"c{n}")).json()[
            "position"])
    return positions


def position_of(api: TestClient, sid: str) -> int:
    return api.get(f"/v1/webhooks/{sid}").json()["position"]


def test_a_worker_killed_mid_delivery_loses_nothing_after_a_restart(api: TestClient, receiver: Receiver,
                                                                    workers: Workers) -> None:
    created = api.post("/v1/webhooks", json={"url": receiver.url}).json()
    positions = record(api, 5)
    receiver.hold(after=2)
    first = workers.start()
    wait_until(lambda: receiver.waiting == 1, "the worker to be mid-delivery of the third event", timeout=60)
    first.kill()
    first.wait(timeout=10)
    receiver.release()
    wait_until(lambda: receiver.waiting == 0, "the held request to end")
    assert position_of(api, created["id"]) <= positions[1]
    second = workers.start()
    wait_until(lambda: position_of(api, created["id"]) == positions[-1], "every event delivered", timeout=60)
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=20) == 0
    assert_in_order_at_least_once(receiver.delivered_positions(created["secret"]), positions, held=positions[2])


def assert_in_order_at_least_once(delivered: list[int], positions: list[int], held: int) -> None:
    """The first run sent everything up to the held event; the next resumed at or before it, in order, to the end."""
    cut = delivered.index(held) + 1
    first, second = delivered[:cut], delivered[cut:]
    assert first == positions[:len(first)]
    assert second == positions[len(positions) - len(second):]
    assert held in second


def test_a_standby_worker_takes_over_when_the_active_one_dies(api: TestClient, receiver: Receiver,
                                                              workers: Workers, database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("single-active workers need PostgreSQL's advisory locks")
    created = api.post("/v1/webhooks", json={"url": receiver.url}).json()
    positions = record(api, 2)
    active = workers.start()
    wait_until(lambda: position_of(api, created["id"]) == positions[-1], "the first worker to deliver", timeout=60)
    standby = workers.start()
    wait_until(lambda: b"webhook worker started" in workers.log(1), "the standby to start", timeout=60)
    receiver.hold()
    positions += record_more(api, 2)
    wait_until(lambda: receiver.waiting == 1, "the active worker to be mid-delivery", timeout=60)
    assert b"is active" not in workers.log(1)
    active.kill()
    active.wait(timeout=10)
    receiver.release()
    wait_until(lambda: position_of(api, created["id"]) == positions[-1], "the standby to deliver the rest",
               timeout=60)
    assert standby.poll() is None and b"is active" in workers.log(1)
    assert_in_order_at_least_once(receiver.delivered_positions(created["secret"]), positions, held=positions[2])


def record_more(api: TestClient, count: int) -> list[int]:
    return [api.post("/v1/agreements/accord/commitments", json=builders.commitment(f"m{n}")).json()["position"]
            for n in range(count)]
