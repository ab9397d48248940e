"""Initial schema: payments projection, payment events, order ledger, webhook inbox, rate limits.

Revision ID: 0001
Revises:
Create Date: 2025-11-27

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here rather than imported from tables.py: a migration must keep meaning what it meant.
_json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_utc = sa.DateTime(timezone=True)
_webhook_dedup_where = "verified AND event_id IS NOT NULL"


def upgrade() -> None:
    op.create_table(
        "payments",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("order_id", sa.String(255), nullable=False),
        sa.Column("gateway", sa.String(64), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("captured_minor", sa.BigInteger(), nullable=False),
        sa.Column("refunded_minor", sa.BigInteger(), nullable=False),
        sa.Column("capture_method", sa.String(16), nullable=False),
        sa.Column("customer_id", sa.String(255)),
        sa.Column("provider_payment_id", sa.String(255)),
        sa.Column("method_type", sa.String(32), nullable=False),
        sa.Column("card_last4", sa.String(4)),
        sa.Column("card_brand", sa.String(32)),
        sa.Column("card_fingerprint", sa.String(128)),
        sa.Column("failure_code", sa.String(64)),
        sa.Column("fraud_score", sa.Integer()),
        sa.Column("customer_ip", sa.String(45)),
        sa.Column("view", _json, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", _utc, nullable=False),
        sa.Column("updated_at", _utc, nullable=False),
        sa.Column("completed_at", _utc),
        sa.PrimaryKeyConstraint("id", name="pk_payments"),
    )
    op.create_index("ix_payments_order_id", "payments", ["order_id"])
    op.create_index("ix_payments_status", "payments", ["status"])
    op.create_index("ix_payments_created_at", "payments", ["created_at"])
    op.create_index("ix_payments_provider_payment_id_gateway", "payments", ["provider_payment_id", "gateway"])
    op.create_index("ix_payments_customer_id_created_at", "payments", ["customer_id", "created_at"])
    op.create_index("ix_payments_customer_ip_created_at", "payments", ["customer_ip", "created_at"])
    op.create_index("ix_payments_card_fingerprint_created_at", "payments", ["card_fingerprint", "created_at"])

    op.create_table(
        "payment_events",
        sa.Column("id", _big_id, autoincrement=True, nullable=False),
        sa.Column("payment_id", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("data", _json, nullable=False),
        sa.Column("created_at", _utc, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_payment_events"),
        sa.UniqueConstraint(
            "payment_id", "version", "type", name="uq_payment_events_payment_id_version_type"
        ),
    )

    op.create_table(
        "orders",
        sa.Column("order_id", sa.String(255), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("payment_id", sa.String(64)),
        sa.Column("updated_at", _utc, nullable=False),
        sa.PrimaryKeyConstraint("order_id", name="pk_orders"),
    )

    op.create_table(
        "webhook_inbox",
        sa.Column("id", _big_id, autoincrement=True, nullable=False),
        sa.Column("gateway", sa.String(64), nullable=False),
        sa.Column("event_id", sa.String(255)),
        sa.Column("payment_id", sa.String(64)),
        sa.Column("verified", sa.Boolean(), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("event_type", sa.String(128)),
        sa.Column("received_at", _utc, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_inbox"),
    )
    op.create_index("ix_webhook_inbox_payment_id", "webhook_inbox", ["payment_id"])
    op.create_index(
        "uq_webhook_inbox_gateway_event_id",
        "webhook_inbox",
        ["gateway", "event_id"],
        unique=True,
        postgresql_where=sa.text(_webhook_dedup_where),
        sqlite_where=sa.text(_webhook_dedup_where),
    )

    op.create_table(
        "rate_limit_hits",
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("window_start", sa.BigInteger(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key", "window_start", name="pk_rate_limit_hits"),
    )


def downgrade() -> None:
    op.drop_table("rate_limit_hits")
    op.drop_index("uq_webhook_inbox_gateway_event_id", table_name="webhook_inbox")
    op.drop_index("ix_webhook_inbox_payment_id", table_name="webhook_inbox")
    op.drop_table("webhook_inbox")
    op.drop_table("orders")
    op.drop_table("payment_events")
    for index in (
        "ix_payments_card_fingerprint_created_at",
        "ix_payments_customer_ip_created_at",
        "ix_payments_customer_id_created_at",
        "ix_payments_provider_payment_id_gateway",
        "ix_payments_created_at",
        "ix_payments_status",
        "ix_payments_order_id",
    ):
        op.drop_index(index, table_name="payments")
    op.drop_table("payments")
