"""`pactwatch migrate` creates every table of projections/schema.py as declared, and can run again."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text
from sqlalchemy_utils.types.uuid import UUIDType

from app.migrate import alembic_config
from projections.schema import metadata


def pactwatch(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    """Run the real console script (beside this interpreter) against a database."""
    script = Path(sys.executable).parent / "pactwatch"
    env = {**os.environ, "PACTWATCH_DATABASE_URL": database_url}
    return subprocess.run([str(script), *args], env=env, capture_output=True, text=True, timeout=120)


def compare_type(context: MigrationContext, inspected_column: Any, metadata_column: Any, inspected_type: Any,
                 metadata_type: Any) -> bool | None:
    """Alembic's type comparison, except that SQLite reflects BINARY(16) (a UUIDType) as NUMERIC:
    there the declared type is compared with the DDL the schema compiles to."""
    dialect = context.dialect
    if isinstance(metadata_type, UUIDType) and dialect.name == "sqlite":
        table = metadata_column.table.name
        declared = {row[1]: row[2] for row in context.connection.execute(text(f'PRAGMA table_info("{table}")'))}
        return declared[metadata_column.name] != metadata_type.load_dialect_impl(dialect).compile(dialect)
    return None


def differences(database_url: str) -> list[object]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": compare_type,
                                                             "compare_server_default": False})
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def stamped(database_url: str) -> list[str]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
    finally:
        engine.dispose()


def prepared(database_url: str) -> str:
    """An empty database: an empty SQLite file, or the fresh PostgreSQL database of the fixture."""
    if database_url.startswith("sqlite:///"):
        Path(database_url.removeprefix("sqlite:///")).touch()
    engine = create_engine(database_url)
    try:
        assert inspect(engine).get_table_names() == []
    finally:
        engine.dispose()
    return database_url


def test_migrate_creates_every_table_as_the_schema_declares_it(empty_database_url: str) -> None:
    url = prepared(empty_database_url)
    done = pactwatch("migrate", database_url=url)
    assert done.returncode == 0, done.stderr
    engine = create_engine(url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert set(metadata.tables) <= tables
    assert differences(url) == []
    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    assert stamped(url) == [head]


def test_migrate_is_idempotent(empty_database_url: str) -> None:
    url = prepared(empty_database_url)
    first = pactwatch("migrate", database_url=url)
    assert first.returncode == 0, first.stderr
    second = pactwatch("migrate", database_url=url)
    assert second.returncode == 0, second.stderr
    assert differences(url) == []
    assert len(stamped(url)) == 1


def test_the_comparison_notices_a_stray_column_and_a_wrong_type(empty_database_url: str) -> None:
    url = prepared(empty_database_url)
    assert pactwatch("migrate", database_url=url).returncode == 0
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE rm_meta ADD COLUMN stray INTEGER"))
            conn.execute(text("DROP TABLE pactwatch_snapshots"))
            conn.execute(text("CREATE TABLE pactwatch_snapshots (originator_id TEXT NOT NULL, "
                              "originator_version INTEGER NOT NULL, topic TEXT NOT NULL, state BLOB NOT NULL, "
                              "PRIMARY KEY (originator_id, originator_version))".replace(
                                  "BLOB", "BYTEA" if url.startswith("postgresql") else "BLOB")))
    finally:
        engine.dispose()
    found = repr(differences(url))
    assert "stray" in found
    assert "'pactwatch_snapshots', 'originator_id'" in found


def test_the_migrations_form_one_line(database_url: str) -> None:
    script = ScriptDirectory.from_config(alembic_config(database_url))
    assert len(script.get_heads()) == 1
    assert len(script.get_bases()) == 1
