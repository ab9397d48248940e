"""What durapay tells the merchant: the event types of its webhooks and events API, and which of a
transition's recorded events become one (the rest are durapay's own bookkeeping).

A merchant event is written by the store in the same transaction as the transition that raised it
(activities/store/repository.py) and delivered by `MerchantWebhooksWorkflow`
(workflows/merchant_webhooks.py), in the order it was recorded.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from hashlib import sha256

from pydantic import Field

from workflows.domain import DEFAULT_MERCHANT_ID, Contract, PaymentView
from workflows.ledger_io import PaymentTransition


class MerchantEventType(StrEnum):
    PAYMENT_AUTHORIZED = "payment.authorized"
    PAYMENT_SUCCEEDED = "payment.succeeded"
    PAYMENT_FAILED = "payment.failed"
    PAYMENT_REQUIRES_ACTION = "payment.requires_action"
    PAYMENT_CANCELLED = "payment.cancelled"
    PAYMENT_CAPTURED = "payment.captured"
    # Held for an operator: by the fraud check, or money a bank transfer payment cannot take as is.
    PAYMENT_REVIEW_REQUIRED = "payment.review_required"
    REFUND_SUCCEEDED = "refund.succeeded"
    REFUND_FAILED = "refund.failed"
    DISPUTE_OPENED = "dispute.opened"
    DISPUTE_CLOSED = "dispute.closed"


_FROM_RECORDED = {
    "payment.authorized": MerchantEventType.PAYMENT_AUTHORIZED,
    "payment.completed": MerchantEventType.PAYMENT_SUCCEEDED,
    "payment.failed": MerchantEventType.PAYMENT_FAILED,
    "payment.requires_action": MerchantEventType.PAYMENT_REQUIRES_ACTION,
    "payment.cancelled": MerchantEventType.PAYMENT_CANCELLED,
    "payment.captured": MerchantEventType.PAYMENT_CAPTURED,
    "review.requested": MerchantEventType.PAYMENT_REVIEW_REQUIRED,  # the fraud check's hold
    "payment.requires_review": MerchantEventType.PAYMENT_REVIEW_REQUIRED,  # a bank transfer's
    "refund.succeeded": MerchantEventType.REFUND_SUCCEEDED,
    "refund.failed": MerchantEventType.REFUND_FAILED,
}
# The workflow records `dispute.<provider status>`: these statuses end a dispute, any other one
# (needs_response, under_review, ...) is an open dispute.
_DISPUTE_CLOSED_STATUSES = frozenset(
    {"won", "lost", "warning_closed", "closed", "charge_refunded", "dispute.closed"}
)


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # to be sent (again)
    DELIVERED = "delivered"  # the endpoint answered 2xx
    FAILED = "failed"  # retried for the whole delivery period without a 2xx
    NOT_SENT = "not_sent"  # no endpoint, or a type the merchant did not enable


class MerchantEvent(Contract):
    """One event for the merchant. `id` is derived from the transition, so a retried record writes
    the same event, and a redelivery carries the same `webhook-id`."""

    id: str
    type: MerchantEventType
    payment_id: str
    created_at: datetime
    data: dict[str, object]
    merchant_id: str = DEFAULT_MERCHANT_ID  # the payment's merchant: whose endpoint receives it, who lists it


class DeliveryAttempt(Contract):
    attempted_at: datetime
    http_status: int | None = None  # None: no answer (refused, timed out)
    latency_ms: int
    error: str | None = None


class StoredMerchantEvent(MerchantEvent):
    delivery_status: DeliveryStatus
    attempts: list[DeliveryAttempt] = Field(default_factory=list)


def merchant_events(t: PaymentTransition) -> list[MerchantEvent]:
    """The merchant events a transition raises, in the order it recorded them."""
    out = []
    for index, record in enumerate(t.events):
        kind = _FROM_RECORDED.get(record.type)
        if kind is None and record.type.startswith("dispute."):
            closed = record.type.removeprefix("dispute.") in _DISPUTE_CLOSED_STATUSES
            kind = MerchantEventType.DISPUTE_CLOSED if closed else MerchantEventType.DISPUTE_OPENED
        if kind is None:
            continue
        digest = sha256(f"{t.view.id}:{t.view.version}:{index}:{record.type}".encode()).hexdigest()
        out.append(
            MerchantEvent(
                id=f"evt_{digest[:24]}",
                type=kind,
                payment_id=t.view.id,
                merchant_id=t.view.merchant_id,
                created_at=t.view.updated_at,
                data=_data(t.view, record.data, kind, record.type.removeprefix("dispute.")),
            )
        )
    return out


def _data(
    view: PaymentView, recorded: dict[str, str], kind: MerchantEventType, status: str
) -> dict[str, object]:
    """The payment as the merchant sees it then, plus the refund or dispute the event is about.
    Amounts are decimal strings in the payment's currency, as in the API."""
    money = view.amount
    data: dict[str, object] = {
        "object": "payment",
        "payment_id": view.id,
        "order_id": view.order_id,
        "status": view.status.value,
        "amount": str(money.to_decimal()),
        "currency": money.currency,
        "amount_captured": str(money.with_minor(view.captured_minor).to_decimal()),
        "amount_refunded": str(money.with_minor(view.refunded_minor).to_decimal()),
        "failure_code": view.failure.code if view.failure else None,
        "metadata": dict(view.metadata),
    }
    if kind in (MerchantEventType.REFUND_SUCCEEDED, MerchantEventType.REFUND_FAILED):
        refund = next((r for r in view.refunds if r.refund_id == recorded.get("refund_id")), None)
        if refund is not None:
            data["refund"] = {
                "id": refund.refund_id,
                "amount": str(refund.amount.to_decimal()),
                "status": refund.status.value,
                "failure_code": refund.failure.code if refund.failure else None,
            }
    if kind in (MerchantEventType.DISPUTE_OPENED, MerchantEventType.DISPUTE_CLOSED) and view.disputes:
        data["dispute"] = _dispute(view, recorded.get("dispute_id"), status)
    return data


def _dispute(view: PaymentView, dispute_id: str | None, status: str) -> dict[str, object]:
    """The dispute a `dispute.<status>` record is about: the one it names (payments recorded
    before records named it: the one in that status, else the latest)."""
    matching = (
        [d for d in view.disputes if d.dispute_id == dispute_id]
        or [d for d in view.disputes if d.status == status]
        or view.disputes
    )
    dispute = matching[-1]
    return {
        "id": dispute.dispute_id,
        "status": dispute.status,
        "amount": str(dispute.amount.to_decimal()) if dispute.amount else None,
        "reason": dispute.reason,
    }
