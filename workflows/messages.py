"""Signals, updates and their payloads: how the API and the webhook receiver talk to a payment."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from workflows.domain import Contract, ReviewDecisionKind
from workflows.money import Amount


class DecisionRequest(Contract):
    """Sent with the start: waits until the payment is decided. A different fingerprint under the
    same payment id means an idempotency key reused for another request: rejected."""

    request_fingerprint: str


class CaptureRequest(Contract):
    amount_minor: int | None = Field(default=None, gt=0)  # None: all that was authorized


class CancelRequest(Contract):
    reason: str = "requested_by_customer"


class RefundRequest(Contract):
    refund_id: str = Field(min_length=1, max_length=64)  # derived from the caller's idempotency key
    amount_minor: int | None = Field(default=None, gt=0)  # None: all that is left
    reason: str | None = Field(default=None, max_length=200)


class ActionCompleted(Contract):
    """The customer is back from 3-D Secure / the redirect. Only a hint: the workflow asks the gateway."""

    data: dict[str, str] = Field(default_factory=dict)


class ReviewDecision(Contract):
    """An operator's decision on a payment held for review. `decided_by` is set by the API (the
    API key id); an update sent from the Temporal UI without it is recorded as "temporal-ui"."""

    decision: ReviewDecisionKind
    note: str | None = Field(default=None, max_length=500)
    decided_by: str | None = Field(default=None, max_length=128)


class BankTransferReceipt(Contract):
    """Money received by bank transfer, and who vouches for it: the proof a bank transfer payment
    waits for (update `confirm_bank_transfer`). Sent by an operator (`POST
    /v1/payments/{id}/bank_transfer/confirm`, or the Temporal UI) or by the statement import."""

    amount: Amount
    bank_reference: str = Field(min_length=1, max_length=140)  # the bank's reference of the credit
    received_at: datetime
    source: Literal["operator", "statement"]
    # Who confirmed: the operator's API key id or Temporal user, or the statement entry.
    confirmed_by: str = Field(min_length=1, max_length=200)
    payer_name: str | None = Field(default=None, max_length=140)
    payer_iban: str | None = Field(default=None, max_length=34)


class BankTransferResolution(Contract):
    """An operator's decision on a payment held for review (update `resolve_bank_transfer`): keep the
    money and confirm the order, or give it back (for a bank transfer: a manual payout)."""

    decision: Literal["accept", "refund"]
    decided_by: str = Field(min_length=1, max_length=200)
