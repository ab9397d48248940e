"""Signals, updates and their payloads: how the API and the webhook receiver talk to a payment."""

from __future__ import annotations

from pydantic import Field

from workflows.domain import Contract, ReviewDecisionKind


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
