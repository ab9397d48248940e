"""Bank transfers: imported statement lines (matched or not) and the manual payouts done.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_utc = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "bank_statement_lines",
        sa.Column("account", sa.String(34), nullable=False),
        sa.Column("entry_reference", sa.String(140), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("booked_on", sa.String(10), nullable=False),
        sa.Column("reference", sa.String(35)),
        sa.Column("remittance", sa.String(1000), nullable=False),
        sa.Column("payer_name", sa.String(140)),
        sa.Column("payer_iban", sa.String(34)),
        sa.Column("payment_id", sa.String(64)),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("reason", sa.String(255)),
        sa.Column("statement", sa.String(255), nullable=False),
        sa.Column("imported_at", _utc, nullable=False),
        sa.PrimaryKeyConstraint("account", "entry_reference", name="pk_bank_statement_lines"),
    )
    op.create_index("ix_bank_statement_lines_payment_id", "bank_statement_lines", ["payment_id"])
    op.create_index(
        "ix_bank_statement_lines_outcome_imported_at", "bank_statement_lines", ["outcome", "imported_at"]
    )
    op.create_table(
        "bank_payouts_done",
        sa.Column("payment_id", sa.String(64), nullable=False),
        sa.Column("done_by", sa.String(200), nullable=False),
        sa.Column("done_at", _utc, nullable=False),
        sa.PrimaryKeyConstraint("payment_id", name="pk_bank_payouts_done"),
    )


def downgrade() -> None:
    op.drop_table("bank_payouts_done")
    op.drop_index("ix_bank_statement_lines_outcome_imported_at", table_name="bank_statement_lines")
    op.drop_index("ix_bank_statement_lines_payment_id", table_name="bank_statement_lines")
    op.drop_table("bank_statement_lines")
