"""Merchants and customers: payments.merchant_id with the list indexes of GET /v1/payments, orders
keyed by (merchant, order id), customers, their gateway-side accounts and saved payment methods.

Every payment made before merchants belongs to the `default` merchant (the column's server default
fills existing rows). On PostgreSQL, a large payments table is better indexed beforehand with
`CREATE INDEX CONCURRENTLY` under the same names (this revision then only adds what is missing):
a plain CREATE INDEX blocks writes to the table while it builds.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here rather than imported from tables.py: a migration must keep meaning what it meant.
_json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_utc = sa.DateTime(timezone=True)
_list_indexes = {
    "ix_payments_merchant_created_at_id": ["merchant_id", "created_at", "id"],
    "ix_payments_merchant_status_created_at_id": ["merchant_id", "status", "created_at", "id"],
    "ix_payments_merchant_gateway_created_at_id": ["merchant_id", "gateway", "created_at", "id"],
    "ix_payments_merchant_order_id_created_at_id": ["merchant_id", "order_id", "created_at", "id"],
    "ix_payments_merchant_customer_id_created_at_id": ["merchant_id", "customer_id", "created_at", "id"],
}


def upgrade() -> None:
    with op.batch_alter_table("payments") as batch:
        batch.add_column(
            sa.Column("merchant_id", sa.String(64), nullable=False, server_default=sa.text("'default'"))
        )
    existing = {index["name"] for index in sa.inspect(op.get_bind()).get_indexes("payments")}
    for name, columns in _list_indexes.items():
        if name not in existing:
            op.create_index(name, "payments", columns)

    # Order ids are each merchant's own: the order ledger is keyed by (merchant, order).
    with op.batch_alter_table("orders") as batch:
        batch.add_column(
            sa.Column("merchant_id", sa.String(64), nullable=False, server_default=sa.text("'default'"))
        )
        batch.drop_constraint("pk_orders", type_="primary")
        batch.create_primary_key("pk_orders", ["merchant_id", "order_id"])

    op.create_table(
        "customers",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("merchant_id", sa.String(64), nullable=False),
        sa.Column("email", sa.String(254)),
        sa.Column("name", sa.String(255)),
        sa.Column("metadata", _json, nullable=False),
        sa.Column("created_at", _utc, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_customers"),
    )
    op.create_index("ix_customers_merchant_id", "customers", ["merchant_id"])
    op.create_table(
        "customer_gateway_accounts",
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("gateway", sa.String(64), nullable=False),
        sa.Column("provider_customer_id", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", "gateway", name="pk_customer_gateway_accounts"),
    )
    op.create_table(
        "saved_payment_methods",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("merchant_id", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("gateway", sa.String(64), nullable=False),
        sa.Column("provider_method_id", sa.String(255), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("brand", sa.String(32)),
        sa.Column("last4", sa.String(4)),
        sa.Column("exp_month", sa.Integer()),
        sa.Column("exp_year", sa.Integer()),
        sa.Column("created_at", _utc, nullable=False),
        sa.Column("detached_at", _utc),
        sa.PrimaryKeyConstraint("id", name="pk_saved_payment_methods"),
    )
    op.create_index("ix_saved_payment_methods_customer_id", "saved_payment_methods", ["customer_id"])


def downgrade() -> None:
    op.drop_index("ix_saved_payment_methods_customer_id", table_name="saved_payment_methods")
    op.drop_table("saved_payment_methods")
    op.drop_table("customer_gateway_accounts")
    op.drop_index("ix_customers_merchant_id", table_name="customers")
    op.drop_table("customers")
    with op.batch_alter_table("orders") as batch:
        batch.drop_constraint("pk_orders", type_="primary")
        batch.create_primary_key("pk_orders", ["order_id"])
        batch.drop_column("merchant_id")
    for name in reversed(list(_list_indexes)):
        op.drop_index(name, table_name="payments")
    with op.batch_alter_table("payments") as batch:
        batch.drop_column("merchant_id")
