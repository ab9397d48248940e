"""Merchant events and their delivery attempts (merchant webhooks and the events API).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here rather than imported from tables.py: a migration must keep meaning what it meant.
_json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_utc = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "merchant_events",
        sa.Column("seq", _big_id, autoincrement=True, nullable=False),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("payment_id", sa.String(64), nullable=False),
        sa.Column("merchant_id", sa.String(64), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("data", _json, nullable=False),
        sa.Column("created_at", _utc, nullable=False),
        sa.Column("delivery_status", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_merchant_events"),
        sa.UniqueConstraint("id", name="uq_merchant_events_id"),
    )
    op.create_index("ix_merchant_events_payment_id_seq", "merchant_events", ["payment_id", "seq"])
    op.create_index("ix_merchant_events_type_seq", "merchant_events", ["type", "seq"])
    op.create_index("ix_merchant_events_merchant_id_seq", "merchant_events", ["merchant_id", "seq"])
    op.create_table(
        "merchant_event_attempts",
        sa.Column("id", _big_id, autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("attempted_at", _utc, nullable=False),
        sa.Column("http_status", sa.Integer()),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(255)),
        sa.PrimaryKeyConstraint("id", name="pk_merchant_event_attempts"),
    )
    op.create_index("ix_merchant_event_attempts_event_id", "merchant_event_attempts", ["event_id"])


def downgrade() -> None:
    op.drop_index("ix_merchant_event_attempts_event_id", table_name="merchant_event_attempts")
    op.drop_table("merchant_event_attempts")
    op.drop_index("ix_merchant_events_merchant_id_seq", table_name="merchant_events")
    op.drop_index("ix_merchant_events_type_seq", table_name="merchant_events")
    op.drop_index("ix_merchant_events_payment_id_seq", table_name="merchant_events")
    op.drop_table("merchant_events")
