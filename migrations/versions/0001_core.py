"""The event store (eventsourcing's tables), the hash chain and the read models.

Revision ID: 0001_core
Revises:
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy_utils.types.uuid import UUIDType

revision = "0001_core"
down_revision = None
branch_labels = None
depends_on = None

BigInt = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "pactwatch_events",
        sa.Column("id", BigInt, primary_key=True, autoincrement=True),
        sa.Column("originator_id", UUIDType(), nullable=False),
        sa.Column("originator_version", BigInt, nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("state", sa.LargeBinary(), nullable=False),
    )
    op.create_index("pactwatch_events_aggregate_idx", "pactwatch_events",
                    ["originator_id", "originator_version"], unique=True)
    op.create_index("pactwatch_events_topic_idx", "pactwatch_events", ["topic", "id"])
    op.create_table(
        "pactwatch_snapshots",
        sa.Column("originator_id", UUIDType(), primary_key=True),
        sa.Column("originator_version", BigInt, primary_key=True),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("state", sa.LargeBinary(), nullable=False),
    )
    op.create_table(
        "pactwatch_tracking",
        sa.Column("application_name", sa.String(32), primary_key=True),
        sa.Column("notification_id", BigInt),
    )
    op.create_table(
        "audit_chain",
        sa.Column("position", BigInt, primary_key=True, autoincrement=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_table(
        "rm_meta",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", BigInt, nullable=False),
    )
    op.create_table(
        "rm_compliance",
        sa.Column("generation", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("agreement_id", sa.String(64), primary_key=True),
        sa.Column("created_position", BigInt, nullable=False),
        sa.Column("version", BigInt, nullable=False),
        sa.Column("view", sa.Text(), nullable=False),
        sa.Column("undo", sa.Text(), nullable=False),
    )
    op.create_table(
        "rm_timeline",
        sa.Column("generation", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("position", BigInt, primary_key=True, autoincrement=False),
        sa.Column("agreement_id", sa.String(64), nullable=False),
        sa.Column("version", BigInt, nullable=False),
        sa.Column("occurred_on", sa.String(10), nullable=False),
        sa.Column("recorded_at", sa.String(32), nullable=False),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("event_type", sa.String(40), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("retracted_by_version", BigInt, nullable=True),
        sa.Column("retracted_by_recorded_at", sa.String(32), nullable=True),
    )
    op.create_index("rm_timeline_agreement_idx", "rm_timeline",
                    ["generation", "agreement_id", "occurred_on", "position"])
    op.create_index("rm_timeline_event_idx", "rm_timeline", ["generation", "event_id"])


def downgrade() -> None:
    for table in ("rm_timeline", "rm_compliance", "rm_meta", "audit_chain", "pactwatch_tracking",
                  "pactwatch_snapshots", "pactwatch_events"):
        op.drop_table(table)
