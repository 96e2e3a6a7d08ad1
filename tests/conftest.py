"""Shared fixtures: a fresh database per test on SQLite, and on PostgreSQL when configured."""
from __future__ import annotations

import os
import queue
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.main import create_app
from app.migrate import upgrade
from app.settings import Settings

POSTGRES_URL = os.environ.get("PACTWATCH_TEST_POSTGRES_URL")
BACKENDS = ["sqlite"] + (["postgres"] if POSTGRES_URL else [])
ADMIN_TOKEN = "test-admin-token"


def pytest_configure(config: pytest.Config) -> None:
    if POSTGRES_URL:
        try:
            engine = create_engine(POSTGRES_URL)
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            engine.dispose()
        except Exception as exc:  # PostgreSQL was asked for: its absence must fail the run
            raise pytest.UsageError(f"PACTWATCH_TEST_POSTGRES_URL is set but PostgreSQL does not answer: {exc}")


def postgres_url(name: str) -> str:
    assert POSTGRES_URL
    return make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)


def fresh_postgres_database(template: str | None = None) -> tuple[str, str]:
    """Create a database (empty, or a copy of `template`); returns (its URL, its name)."""
    assert POSTGRES_URL
    name = f"pw_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")))
    admin.dispose()
    return postgres_url(name), name


def drop_postgres_database(name: str) -> None:
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


class _Templates:
    """One migrated database per backend, copied for each test instead of migrating it again."""

    def __init__(self) -> None:
        self._made: dict[str, str] = {}
        self._lock = threading.Lock()
        self._drops: queue.Queue[str | None] = queue.Queue()
        self._dropper: threading.Thread | None = None

    def get(self, backend: str) -> str:
        with self._lock:
            if backend not in self._made:
                if backend == "sqlite":
                    path = os.path.join(tempfile.mkdtemp(prefix="pactwatch-template-"), "template.db")
                    upgrade(f"sqlite:///{path}")
                    self._made[backend] = path
                else:
                    url, name = fresh_postgres_database()
                    upgrade(url)
                    self._made[backend] = name
            return self._made[backend]

    def drop_later(self, name: str) -> None:
        """Drop a test database in the background while the next tests run."""
        with self._lock:
            if self._dropper is None:
                self._dropper = threading.Thread(target=self._drop_all, name="drop-databases", daemon=True)
                self._dropper.start()
        self._drops.put(name)

    def _drop_all(self) -> None:
        while (name := self._drops.get()) is not None:
            drop_postgres_database(name)

    def close(self) -> None:
        if self._dropper is not None:
            self._drops.put(None)
            self._dropper.join(timeout=120)
        if "postgres" in self._made:
            drop_postgres_database(self._made["postgres"])
        if "sqlite" in self._made:
            shutil.rmtree(os.path.dirname(self._made["sqlite"]), ignore_errors=True)


TEMPLATES = _Templates()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    TEMPLATES.close()


@contextmanager
def fresh_database(backend: str, directory: os.PathLike[str], stem: str = "pactwatch",
                   migrated: bool = True) -> Iterator[str]:
    """A database of a backend ("sqlite" or "postgres") to itself: migrated (a copy of a
    template) unless `migrated` is false, then empty; dropped afterwards."""
    if backend == "sqlite":
        path = os.path.join(directory, f"{stem}.db")
        if migrated:
            shutil.copyfile(TEMPLATES.get("sqlite"), path)
        yield f"sqlite:///{path}"
        return
    url, name = fresh_postgres_database(TEMPLATES.get("postgres") if migrated else None)
    try:
        yield url
    finally:
        TEMPLATES.drop_later(name)


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> Iterator[str]:
    with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def second_database(database_url: str, tmp_path: os.PathLike[str]) -> Iterator[str]:
    """Another migrated, empty store on the same backend as `database_url`."""
    backend = "sqlite" if database_url.startswith("sqlite") else "postgres"
    with fresh_database(backend, tmp_path, "second") as url:
        yield url


@pytest.fixture(params=BACKENDS)
def empty_database_url(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> Iterator[str]:
    """A database without a single table (for tests of the migrations themselves)."""
    with fresh_database(request.param, tmp_path, migrated=False) as url:
        yield url


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, admin_token=ADMIN_TOKEN, webhook_allow_private=True,
                    webhook_retry_schedule="1,1,1")


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """The real app over httpx, its workers running, as the admin."""
    with TestClient(create_app(settings)) as test_client:
        test_client.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
        yield test_client


@pytest.fixture
def anonymous(client: TestClient) -> TestClient:
    """The same app without credentials."""
    anon = TestClient(client.app)
    anon.__enter__ = None  # type: ignore[assignment]
    return anon
