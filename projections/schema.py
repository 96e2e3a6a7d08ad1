"""SQLAlchemy Core tables: the event store's (owned by eventsourcing) and ours.

Alembic (migrations/) creates every one of them, the event store's included,
so that one `pactwatch migrate` sets up a database; the eventsourcing
recorders run with CREATE_TABLE=no and only read and write rows.
"""
from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Index, Integer, LargeBinary, MetaData, String, Table, Text
from sqlalchemy_utils.types.uuid import UUIDType

metadata = MetaData()
BigInt = BigInteger().with_variant(Integer(), "sqlite")

EVENTS_TABLE = "pactwatch_events"
SNAPSHOTS_TABLE = "pactwatch_snapshots"
TRACKING_TABLE = "pactwatch_tracking"

events = Table(
    EVENTS_TABLE, metadata,
    Column("id", BigInt, primary_key=True, autoincrement=True),
    Column("originator_id", UUIDType(), nullable=False),
    Column("originator_version", BigInt, nullable=False),
    Column("topic", Text(), nullable=False),
    Column("state", LargeBinary(), nullable=False),
    Index(f"{EVENTS_TABLE}_aggregate_idx", "originator_id", "originator_version", unique=True),
    # Ours, beside the library's: the log filtered by event type (`/v1/events?type=`, the agreement list).
    Index(f"{EVENTS_TABLE}_topic_idx", "topic", "id"),
)

snapshots = Table(
    SNAPSHOTS_TABLE, metadata,
    Column("originator_id", UUIDType(), primary_key=True),
    Column("originator_version", BigInt, primary_key=True),
    Column("topic", Text(), nullable=False),
    Column("state", LargeBinary(), nullable=False),
)

tracking = Table(
    TRACKING_TABLE, metadata,
    Column("application_name", String(32), primary_key=True),
    Column("notification_id", BigInt),
)

# The hash chain over the global log: one row per event, written in the
# transaction that records the event (see projections/ledger.py).
audit_chain = Table(
    "audit_chain", metadata,
    Column("position", BigInt, primary_key=True, autoincrement=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

# Which generation of the read models is served; a rebuild fills the next
# generation and flips this row in one transaction.
rm_meta = Table(
    "rm_meta", metadata,
    Column("name", String(64), primary_key=True),
    Column("value", BigInt, nullable=False),
)

rm_compliance = Table(
    "rm_compliance", metadata,
    Column("generation", Integer, primary_key=True, autoincrement=False),
    Column("agreement_id", String(64), primary_key=True),
    Column("created_position", BigInt, nullable=False),
    Column("version", BigInt, nullable=False),
    # The fold's state in two parts: what answers need, and what only retractions need.
    Column("view", Text(), nullable=False),
    Column("undo", Text(), nullable=False),
)

rm_timeline = Table(
    "rm_timeline", metadata,
    Column("generation", Integer, primary_key=True, autoincrement=False),
    Column("position", BigInt, primary_key=True, autoincrement=False),
    Column("agreement_id", String(64), nullable=False),
    Column("version", BigInt, nullable=False),
    Column("occurred_on", String(10), nullable=False),
    Column("recorded_at", String(32), nullable=False),
    Column("event_id", String(36), nullable=False),
    Column("event_type", String(40), nullable=False),
    Column("summary", Text(), nullable=False),
    Column("retracted_by_version", BigInt, nullable=True),
    Column("retracted_by_recorded_at", String(32), nullable=True),
    Index("rm_timeline_agreement_idx", "generation", "agreement_id", "occurred_on", "position"),
    Index("rm_timeline_event_idx", "generation", "event_id"),
)

# API keys: only a SHA-256 of each token is kept (app/keys.py).
api_keys = Table(
    "api_keys", metadata,
    Column("name", String(64), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", String(32), nullable=False),
    Column("revoked_at", String(32), nullable=True),
)

# Idempotency keys: the first 2xx answer to (key name, method, path, key).
idempotency_keys = Table(
    "idempotency_keys", metadata,
    Column("principal", String(64), primary_key=True),
    Column("method", String(8), primary_key=True),
    Column("path", String(512), primary_key=True),
    Column("idem_key", String(255), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("status", Integer, nullable=True),
    Column("headers", Text(), nullable=True),
    Column("body", LargeBinary(), nullable=True),
    Column("created_at", String(32), nullable=False),
    Index("idempotency_keys_created_idx", "created_at"),
)

# Webhook subscriptions: `position` is the subscription's cursor in the global
# log (every event up to it was delivered or did not match), `attempts` the
# failed attempts at the next matching event, `next_attempt_at` when to retry.
webhooks = Table(
    "webhooks", metadata,
    Column("id", String(36), primary_key=True),
    Column("url", Text(), nullable=False),
    Column("event_types", Text(), nullable=True),
    Column("agreement_id", String(64), nullable=True),
    Column("description", Text(), nullable=True),
    Column("active", Boolean(), nullable=False),
    Column("disabled_reason", Text(), nullable=True),
    Column("secret", String(64), nullable=False),
    Column("previous_secret", String(64), nullable=True),
    Column("previous_secret_until", String(32), nullable=True),
    Column("position", BigInt, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", String(32), nullable=True),
    Column("created_at", String(32), nullable=False),
    Column("updated_at", String(32), nullable=False),
)

# Every delivery attempt (pings included, with a null position), newest kept.
webhook_deliveries = Table(
    "webhook_deliveries", metadata,
    Column("id", BigInt, primary_key=True, autoincrement=True),
    Column("webhook_id", String(36), nullable=False),
    Column("position", BigInt, nullable=True),
    Column("event_id", String(36), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("error", Text(), nullable=True),
    Column("duration_ms", Integer, nullable=False),
    Column("at", String(32), nullable=False),
    Column("next_retry_at", String(32), nullable=True),
    Index("webhook_deliveries_webhook_idx", "webhook_id", "id"),
)
