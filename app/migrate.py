"""Run the Alembic migrations programmatically (`pactwatch migrate`, `serve`)."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, pool, text

import migrations
from app.leader import lock_key

MIGRATION_LOCK = "migrations"


def alembic_config(database_url: str) -> Config:
    here = Path(migrations.__file__).parent
    config = Config(str(here / "alembic.ini"))
    config.set_main_option("script_location", str(here))
    config.set_main_option("version_locations", str(here / "versions"))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


@contextmanager
def migration_lock(database_url: str) -> Iterator[None]:
    """On PostgreSQL, hold an advisory lock so that processes starting together migrate one at a time."""
    if not database_url.startswith("postgresql"):
        yield
        return
    engine = create_engine(database_url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": lock_key(MIGRATION_LOCK)})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": lock_key(MIGRATION_LOCK)})
    finally:
        engine.dispose()


def upgrade(database_url: str) -> None:
    """Bring the database to the newest schema; safe to run on every start, from many processes at once."""
    with migration_lock(database_url):
        command.upgrade(alembic_config(database_url), "head")
