"""What the workflow sends to a gateway activity and what comes back, and the normalized event a
provider webhook becomes. Every call carries an idempotency key derived from the workflow id and the
operation, so a retried activity repeats the same request at the provider, never a new one.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from workflows.domain import (
    CaptureMethod,
    Contract,
    Failure,
    NextAction,
    PaymentMethod,
    RefundStatus,
)
from workflows.money import Amount


class GatewayPaymentStatus(StrEnum):
    """A provider's view of a payment, mapped onto the few states the workflow acts on."""

    SUCCEEDED = "succeeded"  # captured: the money moved
    AUTHORIZED = "authorized"  # held, waiting for capture
    REQUIRES_ACTION = "requires_action"  # the customer must do something (3DS, redirect, QR)
    PROCESSING = "processing"  # accepted, the provider will tell us later
    DECLINED = "declined"  # final: no money moved
    CANCELLED = "cancelled"  # voided / closed: no money moved
    NOT_FOUND = "not_found"  # the provider has no payment under our reference: it was never made


# Merchant metadata travels to the gateway beside durapay's own keys (named `durapay_...`, two on a
# payment): the API admits at most this many merchant keys, so that a gateway capped at 50 keys
# (Stripe) always has room for ours, and refuses merchant keys under our prefix.
MERCHANT_METADATA_MAX_KEYS = 48
RESERVED_METADATA_PREFIX = "durapay_"


class AuthorizeCall(Contract):
    gateway: str
    payment_id: str
    order_id: str
    amount: Amount
    method: PaymentMethod
    capture: bool  # True: authorize and capture in one call (a sale)
    request_three_ds: bool = False
    customer_id: str | None = None
    customer_email: str | None = None
    customer_ip: str | None = None
    return_url: str | None = None
    description: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    idempotency_key: str
    expires_at: datetime | None = None  # when the customer action must be done by (QR / redirect)


class CaptureCall(Contract):
    gateway: str
    payment_id: str
    provider_payment_id: str | None
    amount: Amount  # may be less than authorized where the gateway supports partial capture
    idempotency_key: str


class CancelCall(Contract):
    gateway: str
    payment_id: str
    provider_payment_id: str | None
    reason: str  # duplicate, fraudulent, requested_by_customer, abandoned
    idempotency_key: str


class LookupCall(Contract):
    """Ask the gateway what it knows of our payment: by its id, or by our reference when the
    response that carried its id was lost."""

    gateway: str
    payment_id: str
    provider_payment_id: str | None = None
    amount: Amount
    capture_method: CaptureMethod = CaptureMethod.AUTOMATIC
    # What the customer's return carried (e.g. 3DS result params); a hint, never trusted alone.
    action_data: dict[str, str] = Field(default_factory=dict)
    # Asked because the customer came back (POST /actions/complete), with or without data; False
    # for the periodic poll. A provider that cannot tell a return from a poll may use it.
    customer_returned: bool = False
    # How the customer pays. Lets a gateway tell "not created yet" from "never created": AliPay
    # creates a page / wap / app trade only when the customer opens it. None from older callers.
    method: PaymentMethod | None = None
    # When the payment was created (its authorize cannot be older). Lets a gateway whose search is
    # eventually consistent (Stripe) tell "not indexed yet" from "never made". None: unknown.
    created_at: datetime | None = None


class RefundCall(Contract):
    gateway: str
    payment_id: str
    provider_payment_id: str | None
    refund_id: str
    amount: Amount
    reason: str | None = None
    idempotency_key: str


class RefundLookupCall(Contract):
    gateway: str
    payment_id: str
    provider_payment_id: str | None
    refund_id: str
    provider_refund_id: str | None = None
    # When the refund was asked for: a provider that cannot tell "not received yet" from "failed"
    # (AliPay) keeps it pending until its window has passed. None: unknown.
    requested_at: datetime | None = None


class GatewayResult(Contract):
    """The outcome of authorize / capture / cancel / lookup."""

    status: GatewayPaymentStatus
    provider_payment_id: str | None = None
    authorized_minor: int | None = None
    captured_minor: int | None = None
    next_action: NextAction | None = None
    failure: Failure | None = None
    # A short, non-sensitive summary for operators (provider status, codes); never a raw payload.
    provider_response: dict[str, str] = Field(default_factory=dict)


class RefundResult(Contract):
    refund_id: str
    status: RefundStatus
    provider_refund_id: str | None = None
    failure: Failure | None = None


class GatewayEventKind(StrEnum):
    PAYMENT_SUCCEEDED = "payment.succeeded"
    PAYMENT_AUTHORIZED = "payment.authorized"
    PAYMENT_REQUIRES_ACTION = "payment.requires_action"
    PAYMENT_PROCESSING = "payment.processing"
    PAYMENT_FAILED = "payment.failed"
    PAYMENT_CANCELLED = "payment.cancelled"
    REFUND_SUCCEEDED = "refund.succeeded"
    REFUND_FAILED = "refund.failed"
    DISPUTE_OPENED = "dispute.opened"
    DISPUTE_CLOSED = "dispute.closed"
    UNKNOWN = "unknown"  # acknowledged and recorded, changes nothing


class EventProof(Contract):
    """That durapay checked an event before signalling it: an HMAC over the event and the payment it
    is sent to, under a key only the API and the worker hold (workflows/event_proof.py)."""

    key_id: str
    mac: str


class GatewayEvent(Contract):
    """A provider notification, normalized. The workflow de-duplicates on `event_id`.

    Anyone who can signal a workflow (the Temporal UI or CLI) can send one, so an event that would
    move money takes effect only with a valid `proof`; without one it is only a reason to ask the
    gateway (workflows/payment.py)."""

    gateway: str
    event_id: str
    kind: GatewayEventKind
    provider_type: str  # the provider's own event type, for the record
    payment_id: str | None = None  # ours, when the provider echoes our reference
    provider_payment_id: str | None = None
    amount: Amount | None = None
    refund_id: str | None = None  # ours
    provider_refund_id: str | None = None
    dispute_id: str | None = None
    dispute_status: str | None = None
    dispute_reason: str | None = None
    failure: Failure | None = None
    occurred_at: datetime | None = None
    proof: EventProof | None = None
