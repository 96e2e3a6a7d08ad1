"""Idempotency keys.

Revision ID: 0003_idempotency
Revises: 0002_api_keys
"""
import sqlalchemy as sa
from alembic import op

revision = "0003_idempotency"
down_revision = "0002_api_keys"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("principal", sa.String(64), primary_key=True),
        sa.Column("method", sa.String(8), primary_key=True),
        sa.Column("path", sa.String(512), primary_key=True),
        sa.Column("idem_key", sa.String(255), primary_key=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("headers", sa.Text(), nullable=True),
        sa.Column("body", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.String(32), nullable=False),
    )
    op.create_index("idempotency_keys_created_idx", "idempotency_keys", ["created_at"])


def downgrade() -> None:
    op.drop_table("idempotency_keys")
