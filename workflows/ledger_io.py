"""Inputs and outputs of the local steps: order ledger, fraud check, payment store."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from workflows.domain import DEFAULT_MERCHANT_ID, Contract, PaymentView
from workflows.money import Amount


class OrderReservation(Contract):
    order_id: str
    payment_id: str
    amount: Amount
    # Order ids are each merchant's own: another merchant's order "1001" is another order.
    merchant_id: str = DEFAULT_MERCHANT_ID


class OrderRefusal(StrEnum):
    AMOUNT_MISMATCH = "amount_mismatch"
    PAYMENT_IN_FLIGHT = "payment_in_flight"
    ALREADY_PAID = "already_paid"


class ReservationResult(Contract):
    accepted: bool
    refusal: OrderRefusal | None = None
    message: str | None = None


class OrderRelease(Contract):
    order_id: str
    payment_id: str
    merchant_id: str = DEFAULT_MERCHANT_ID


class FraudCheckRequest(Contract):
    payment_id: str
    amount: Amount
    customer_id: str | None = None
    customer_ip: str | None = None
    customer_email: str | None = None
    card_fingerprint: str | None = None
    card_country: str | None = None
    ip_country: str | None = None  # from metadata when the merchant knows it


class PaymentEventRecord(Contract):
    type: str  # payment.created, payment.authorized, order.paid, payment.failed, refund.succeeded, ...
    data: dict[str, str] = Field(default_factory=dict)


class PaymentTransition(Contract):
    """One step of a payment for the store: the whole new view plus the events it raised."""

    view: PaymentView
    events: list[PaymentEventRecord] = Field(default_factory=list)
