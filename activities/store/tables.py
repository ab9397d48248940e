"""The schema, as SQLAlchemy Core tables. Alembic migrations in `migrations/` create exactly this
(tests compare the two).

Money is always a BigInteger of minor units next to its currency. There is deliberately no column
for a card number or a CVV: payment methods are stored as the token-only `PaymentMethod` summary.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every dialect.

    SQLite has no time zone type and would silently drop the offset, so values are normalized to
    UTC before they are written and come back tagged as UTC. Naive datetimes are refused: their
    meaning depends on the machine that made them.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: durapay stores only timezone-aware times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# JSONB on PostgreSQL (indexable, compact); SQLite stores JSON as text.
Json: Any = JSON().with_variant(JSONB(), "postgresql")
# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
BigId: Any = BigInteger().with_variant(Integer(), "sqlite")


class OrderStatus(StrEnum):
    OPEN = "open"  # registered, no payment holds it
    RESERVED = "reserved"  # a payment is in flight for it
    PAID = "paid"


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# GET /v1/payments filters served by an index of their own (after merchant_id, before the page
# order created_at, id). `provider_payment_id` is served by its webhook index: one id, few rows.
LIST_INDEX_FILTERS: tuple[str | None, ...] = (None, "status", "gateway", "order_id", "customer_id")


def list_index_name(filter_column: str | None) -> str:
    return "ix_payments_merchant_" + (f"{filter_column}_" if filter_column else "") + "created_at_id"


payments = Table(
    "payments",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("merchant_id", String(64), nullable=False, server_default=text("'default'")),
    Column("order_id", String(255), nullable=False, index=True),
    Column("gateway", String(64), nullable=False),
    Column("status", String(32), nullable=False, index=True),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("captured_minor", BigInteger, nullable=False),
    Column("refunded_minor", BigInteger, nullable=False),
    Column("capture_method", String(16), nullable=False),
    Column("customer_id", String(255)),
    Column("provider_payment_id", String(255)),
    Column("method_type", String(32), nullable=False),
    Column("card_last4", String(4)),
    Column("card_brand", String(32)),
    Column("card_fingerprint", String(128)),
    Column("failure_code", String(64)),
    Column("fraud_score", Integer),
    Column("customer_ip", String(45)),  # 45: the longest textual IPv6 address
    Column("view", Json, nullable=False),  # the whole PaymentView, model_dump(mode="json")
    Column("version", Integer, nullable=False),
    Column("created_at", UtcDateTime, nullable=False, index=True),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("completed_at", UtcDateTime),
    # Webhooks are looked up by (provider id, gateway); the provider id alone is the selective part.
    Index("ix_payments_provider_payment_id_gateway", "provider_payment_id", "gateway"),
    # Fraud velocity counts a customer's / IP's / card's payments since a moment.
    Index("ix_payments_customer_id_created_at", "customer_id", "created_at"),
    Index("ix_payments_customer_ip_created_at", "customer_ip", "created_at"),
    Index("ix_payments_card_fingerprint_created_at", "card_fingerprint", "created_at"),
    # GET /v1/payments: one merchant's payments, newest first, paged by (created_at, id); one index
    # per filter that is selective within a merchant, so every common query is an index range.
    *(
        Index(list_index_name(column), "merchant_id", *([column] if column else []), "created_at", "id")
        for column in LIST_INDEX_FILTERS
    ),
)

payment_events = Table(
    "payment_events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("payment_id", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("type", String(64), nullable=False),
    Column("data", Json, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    # Also the idempotency key of a retried transition: the same event is never stored twice.
    UniqueConstraint("payment_id", "version", "type"),
)

orders = Table(
    "orders",
    metadata,
    # Order ids are the merchant's own: the same id at two merchants is two orders.
    Column("merchant_id", String(64), primary_key=True, server_default=text("'default'")),
    Column("order_id", String(255), primary_key=True),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(16), nullable=False),
    Column("payment_id", String(64)),  # the payment holding the order (reserved or paid)
    Column("updated_at", UtcDateTime, nullable=False),
)

# Only verified deliveries take part in de-duplication: an unverified request carries whatever
# event id its sender chose, and must not be able to shadow the genuine event with that id.
WEBHOOK_DEDUP_WHERE = "verified AND event_id IS NOT NULL"

webhook_inbox = Table(
    "webhook_inbox",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("gateway", String(64), nullable=False),
    Column("event_id", String(255)),
    Column("payment_id", String(64), index=True),
    Column("verified", Boolean, nullable=False),
    Column("outcome", String(32), nullable=False),
    Column("event_type", String(128)),
    Column("received_at", UtcDateTime, nullable=False),
    Index(
        "uq_webhook_inbox_gateway_event_id",
        "gateway",
        "event_id",
        unique=True,
        postgresql_where=text(WEBHOOK_DEDUP_WHERE),
        sqlite_where=text(WEBHOOK_DEDUP_WHERE),
    ),
)

rate_limit_hits = Table(
    "rate_limit_hits",
    metadata,
    Column("key", String(255), primary_key=True),
    Column("window_start", BigInteger, primary_key=True),  # unix seconds, a multiple of the window
    Column("count", Integer, nullable=False),
)

# A merchant's customers; the payment methods saved for them at gateways, and the gateway-side
# customer each gateway keeps them under. Never a card number: brand, last4 and expiry only.
customers = Table(
    "customers",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("merchant_id", String(64), nullable=False, index=True),
    Column("email", String(254)),
    Column("name", String(255)),
    Column("metadata", Json, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

customer_gateway_accounts = Table(
    "customer_gateway_accounts",
    metadata,
    Column("customer_id", String(64), primary_key=True),
    Column("gateway", String(64), primary_key=True),
    Column("provider_customer_id", String(255), nullable=False),
)

saved_payment_methods = Table(
    "saved_payment_methods",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("merchant_id", String(64), nullable=False),
    Column("customer_id", String(64), nullable=False, index=True),
    Column("gateway", String(64), nullable=False),
    Column("provider_method_id", String(255), nullable=False),
    Column("type", String(32), nullable=False),
    Column("brand", String(32)),
    Column("last4", String(4)),
    Column("exp_month", Integer),
    Column("exp_year", Integer),
    Column("created_at", UtcDateTime, nullable=False),
    Column("detached_at", UtcDateTime),
)

# What the merchant is told (workflows/merchant_events.py): written with the transition that raised
# it, delivered in `seq` order per payment, listed by the events API newest first.
merchant_events = Table(
    "merchant_events",
    metadata,
    Column("seq", BigId, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False, unique=True),
    Column("payment_id", String(64), nullable=False),
    Column("merchant_id", String(64), nullable=False),
    Column("type", String(64), nullable=False),
    Column("data", Json, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("delivery_status", String(16), nullable=False),
    # The delivery workflow's queue per payment, and the events API's filters (a merchant's events).
    Index("ix_merchant_events_payment_id_seq", "payment_id", "seq"),
    Index("ix_merchant_events_type_seq", "type", "seq"),
    Index("ix_merchant_events_merchant_id_seq", "merchant_id", "seq"),
)

merchant_event_attempts = Table(
    "merchant_event_attempts",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("event_id", String(64), nullable=False, index=True),
    Column("attempted_at", UtcDateTime, nullable=False),
    Column("http_status", Integer),  # None: no answer (refused, timed out)
    Column("latency_ms", Integer, nullable=False),
    Column("error", String(255)),
)

# Bank transfers (activities/gateways/bank_transfer): every credit line of an imported statement,
# matched to a payment or not (an unmatched line is kept and listed, never dropped), keyed by the
# bank's own entry reference so importing a statement again adds nothing; and the manual payouts
# operators have done (the payout tasks themselves are `bank_transfer.payout_requested` events).
bank_statement_lines = Table(
    "bank_statement_lines",
    metadata,
    Column("account", String(34), primary_key=True),  # our IBAN / account ("" when not given)
    Column("entry_reference", String(140), primary_key=True),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("booked_on", String(10), nullable=False),  # ISO date as the statement gives it
    Column("reference", String(35)),
    Column("remittance", String(1000), nullable=False),
    Column("payer_name", String(140)),
    Column("payer_iban", String(34)),
    Column("payment_id", String(64), index=True),
    Column("outcome", String(32), nullable=False),  # matched, held_for_review, unmatched
    Column("reason", String(255)),
    Column("statement", String(255), nullable=False),  # the file it came from
    Column("imported_at", UtcDateTime, nullable=False),
    Index("ix_bank_statement_lines_outcome_imported_at", "outcome", "imported_at"),
)

bank_payouts_done = Table(
    "bank_payouts_done",
    metadata,
    Column("payment_id", String(64), primary_key=True),
    Column("done_by", String(200), nullable=False),
    Column("done_at", UtcDateTime, nullable=False),
)
