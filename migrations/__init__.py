"""Alembic migrations: every table pactwatch uses, the event store's included."""
