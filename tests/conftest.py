"""Shared fixtures: a fresh database per test on SQLite, and on PostgreSQL when configured."""
from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.main import create_app
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


def fresh_postgres_database() -> tuple[str, str]:
    """Create an empty database; returns (its URL, its name)."""
    assert POSTGRES_URL
    name = f"pw_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False), name


def drop_postgres_database(name: str) -> None:
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@contextmanager
def fresh_database(backend: str, directory: os.PathLike[str], stem: str = "pactwatch") -> Iterator[str]:
    """An empty database of a backend ("sqlite" or "postgres"), dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{directory}/{stem}.db"
        return
    url, name = fresh_postgres_database()
    try:
        yield url
    finally:
        drop_postgres_database(name)


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> Iterator[str]:
    with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def second_database(database_url: str, tmp_path: os.PathLike[str]) -> Iterator[str]:
    """Another empty database on the same backend as `database_url`."""
    backend = "sqlite" if database_url.startswith("sqlite") else "postgres"
    with fresh_database(backend, tmp_path, "second") as url:
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
