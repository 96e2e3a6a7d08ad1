"""Run the Alembic migrations programmatically (`pactwatch migrate`, `serve`)."""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

import migrations


def alembic_config(database_url: str) -> Config:
    here = Path(migrations.__file__).parent
    config = Config(str(here / "alembic.ini"))
    config.set_main_option("script_location", str(here))
    config.set_main_option("version_locations", str(here / "versions"))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str) -> None:
    """Bring the database to the newest schema; safe to run on every start."""
    command.upgrade(alembic_config(database_url), "head")
