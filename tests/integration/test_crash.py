"""Crash safety with real `pactwatch serve` processes: SIGKILL during a stream of writes, then restart.

Every write that got a 201 is in the log exactly once, a retry with its Idempotency-Key gets the same
answer and records nothing, and the read models converge to a fresh replay (nothing applied twice).
On PostgreSQL, two servers writing to one agreement at once lose nothing, even when one is killed.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.runtime import build
from app.settings import Settings
from projections import reader, replay
from projections.replay import Filters
from projections.store import active_generation, stored_state
from tests import builders
from tests.conftest import ADMIN_TOKEN, POSTGRES_URL, drop_postgres_database, fresh_postgres_database

PACTWATCH = str(Path(sys.executable).with_name("pactwatch"))
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
AGREEMENT = "truce"
WRITERS = 4
KILL_AFTER = 24


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class Server:
    """One `pactwatch serve` process on 127.0.0.1 and a free port, its output in a file."""

    def __init__(self, database_url: str, log: Path) -> None:
        self.database_url = database_url
        self.log_path = log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PACTWATCH_DATABASE_URL": database_url, "PACTWATCH_ADMIN_TOKEN": ADMIN_TOKEN}
        with open(log, "ab") as out:
            self.proc = subprocess.Popen([PACTWATCH, "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                                         env=env, stdout=out, stderr=subprocess.STDOUT)
        wait_until(self.ready, f"the server on port {self.port} (log: {log})")

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"the server exited with {self.proc.returncode}:\n{self.log_path.read_text()}")
        try:
            return httpx.get(self.url + "/readyz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


def server_starter(database_url: str, tmp_path: Path) -> Iterator[Callable[[], Server]]:
    """Start servers on one database; every one still running is stopped at the end."""
    started: list[Server] = []

    def start() -> Server:
        started.append(Server(database_url, tmp_path / f"server-{len(started)}.log"))
        return started[-1]

    try:
        yield start
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def servers(database_url: str, tmp_path: Path) -> Iterator[Callable[[], Server]]:
    """Servers on the test's database, SQLite or PostgreSQL."""
    yield from server_starter(database_url, tmp_path)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    if not POSTGRES_URL:
        pytest.skip("several server processes share one database on PostgreSQL only")
    url, name = fresh_postgres_database()
    try:
        yield url
    finally:
        drop_postgres_database(name)


@pytest.fixture
def pg_servers(postgres_url: str, tmp_path: Path) -> Iterator[Callable[[], Server]]:
    """Servers sharing one fresh PostgreSQL database."""
    yield from server_starter(postgres_url, tmp_path)


@dataclass
class Write:
    """One request of the stream and what came back (None: the connection broke, outcome unknown)."""

    path: str
    body: dict[str, Any]
    key: str
    status: int | None = None
    answer: dict[str, Any] | None = None


@dataclass
class Stream:
    """Writers posting claims and stages to one agreement, each with its own Idempotency-Key."""

    writes: list[Write] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def acked(self) -> list[Write]:
        with self.lock:
            return [w for w in self.writes if w.status == 201]

    def run(self, name: str, url: Callable[[], str], count: int) -> None:
        with httpx.Client(headers=AUTH, timeout=30) as http:
            for n in range(count):
                write = self.next_write(f"{name}-{n}", n)
                with self.lock:
                    self.writes.append(write)
                try:
                    answer = http.post(url() + write.path, json=write.body, headers={"Idempotency-Key": write.key})
                except httpx.TransportError:
                    return  # the server died under us; this write's outcome is unknown
                write.status = answer.status_code
                write.answer = answer.json()

    @staticmethod
    def next_write(key: str, n: int) -> Write:
        if n % 2:  # a stage of one reported transfer: applied twice, it would count twice
            return Write(f"/v1/agreements/{AGREEMENT}/stages", builders.stage(key, transfers=[
                builders.transfer("c1", count=1)]), key)
        return Write(f"/v1/agreements/{AGREEMENT}/claims", builders.claim(key, commitment_id="c1"), key)


def start_writers(stream: Stream, urls: list[Callable[[], str]], count: int) -> list[threading.Thread]:
    threads = [threading.Thread(target=stream.run, args=(f"w{i}", urls[i % len(urls)], count), daemon=True)
               for i in range(WRITERS)]
    for t in threads:
        t.start()
    return threads


def conclude(url: str) -> None:
    with httpx.Client(headers=AUTH, timeout=30) as http:
        assert http.post(url + "/v1/agreements", json=builders.agreement(AGREEMENT)).status_code == 201
        assert http.post(url + f"/v1/agreements/{AGREEMENT}/commitments",
                         json=builders.commitment("c1", value=10_000)).status_code == 201


def check_log_and_read_models(database_url: str, url: str, stream: Stream) -> list[dict[str, Any]]:
    """Each 201 in the log once, as answered; the chain holds; the read models converge to a fresh replay."""
    events = httpx.get(f"{url}/v1/agreements/{AGREEMENT}/events", timeout=30).json()["items"]
    assert [e["version"] for e in events] == list(range(1, len(events) + 1))
    by_id = {e["id"]: e for e in events}
    for write in stream.acked():
        assert by_id[write.answer["id"]] == write.answer
    keys = Counter(e["data"].get("claim_id") or e["data"].get("stage_id") for e in events[2:])
    assert max(keys.values()) == 1, [k for k, n in keys.items() if n > 1]
    assert httpx.get(f"{url}/v1/audit/verify", headers=AUTH, timeout=60).json()["ok"] is True

    runtime = build(Settings(database_url=database_url))
    try:
        def converged() -> bool:
            with runtime.engine.connect() as conn:
                return runtime.read_models.compliance_version(conn, AGREEMENT) == len(events)

        wait_until(converged, "the read models to catch up after the restart")
        with runtime.engine.connect() as conn:
            live = stored_state(conn, active_generation(conn), AGREEMENT)
            timeline = runtime.read_models.timeline(conn, AGREEMENT, None, None, None)
            stored = reader.agreement_events(conn, AGREEMENT)
    finally:
        runtime.close()
    assert live == replay.fold(stored, AGREEMENT, Filters())
    stages = sum(1 for e in events if e["type"] == "StageCompleted")
    assert live["commitments"]["c1"]["reported"] == stages
    assert [item["id"] for item in timeline] == [item["id"] for item in replay.timeline_items(stored, Filters())]
    return events


def retry_every_write(url: str, stream: Stream) -> None:
    """Retries with the same key: an acknowledged write is answered again and not recorded again."""
    with httpx.Client(headers=AUTH, timeout=30) as http:
        for write in list(stream.writes):
            again = http.post(url + write.path, json=write.body, headers={"Idempotency-Key": write.key})
            if write.status == 201:
                assert again.status_code == 201 and again.json() == write.answer
                assert again.headers["Idempotent-Replayed"] == "true"
            else:
                # Unknown outcome: recorded before the kill (replayed), not recorded (written now), or its
                # claim is still within its lease (409); never a 5xx.
                assert again.status_code in (201, 409), again.text


def test_a_server_killed_mid_stream_loses_no_acknowledged_write(database_url: str,
                                                                servers: Callable[[], Server]) -> None:
    first = servers()
    conclude(first.url)
    stream = Stream()
    threads = start_writers(stream, [lambda: first.url], count=200)
    wait_until(lambda: len(stream.acked()) >= KILL_AFTER, "writes to be acknowledged")
    first.kill()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert all(w.status in (None, 201) for w in stream.writes), [w.answer for w in stream.writes if w.status]
    assert len(stream.acked()) < len(stream.writes), "the kill came after the stream ended: nothing was tested"

    second = servers()
    before = check_log_and_read_models(database_url, second.url, stream)
    retry_every_write(second.url, stream)
    after = check_log_and_read_models(database_url, second.url, stream)
    assert len(after) - len(before) <= len([w for w in stream.writes if w.status is None])


@pytest.mark.postgres
def test_two_postgres_servers_writing_to_one_agreement_lose_nothing(postgres_url: str,
                                                                    pg_servers: Callable[[], Server]) -> None:
    database_url = postgres_url
    one, two = pg_servers(), pg_servers()
    conclude(one.url)
    stream = Stream()
    threads = start_writers(stream, [lambda: one.url, lambda: two.url], count=15)
    for t in threads:
        t.join(timeout=120)
    assert [w.status for w in stream.writes] == [201] * WRITERS * 15, [w.answer for w in stream.writes]
    events = check_log_and_read_models(database_url, one.url, stream)
    assert len(events) == 2 + WRITERS * 15
    retry_every_write(two.url, stream)
    assert len(check_log_and_read_models(database_url, two.url, stream)) == len(events)


@pytest.mark.postgres
def test_killing_one_of_two_postgres_servers_loses_nothing_either_acknowledged(
        postgres_url: str, pg_servers: Callable[[], Server]) -> None:
    database_url = postgres_url
    one, two = pg_servers(), pg_servers()
    conclude(two.url)
    stream = Stream()
    threads = start_writers(stream, [lambda: one.url, lambda: two.url], count=60)
    wait_until(lambda: len(stream.acked()) >= KILL_AFTER, "writes to be acknowledged")
    one.kill()
    for t in threads:
        t.join(timeout=120)
    survivors = [w for w in stream.writes if "w1-" in w.key or "w3-" in w.key]
    assert [w.status for w in survivors] == [201] * len(survivors) == [201] * 60 * 2
    restarted = pg_servers()
    check_log_and_read_models(database_url, restarted.url, stream)
    retry_every_write(restarted.url, stream)
    check_log_and_read_models(database_url, two.url, stream)
