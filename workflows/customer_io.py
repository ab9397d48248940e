"""Customers and their saved payment methods: the records the store keeps and the API answers with,
and what the saved-method workflows hand their activities. Never a card number: a saved method is
the gateway's id for it plus brand, last4 and expiry."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from workflows.domain import Contract


class CustomerRecord(Contract):
    id: str
    merchant_id: str
    email: str | None = None
    name: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    created_at: datetime


class SavedMethodRecord(Contract):
    id: str
    merchant_id: str
    customer_id: str
    gateway: str
    provider_method_id: str  # the gateway's id (Stripe pm_...): what a payment is made with
    type: str
    brand: str | None = None
    last4: str | None = None
    exp_month: int | None = None
    exp_year: int | None = None
    created_at: datetime
    detached_at: datetime | None = None


class SaveMethodRequest(Contract):
    """Save the method a gateway token stands for, for a customer, under our id `method_id`."""

    method_id: str
    merchant_id: str
    customer_id: str
    gateway: str
    token: str = Field(min_length=1, max_length=255)  # the provider's token / nonce, spent on attach
    email: str | None = None  # for the gateway-side customer, when one has to be created
    name: str | None = None


class GatewayCustomerCall(Contract):
    """Find or create the gateway's customer for our customer; `idempotency_key` makes a retried
    create return the first one."""

    customer_id: str
    gateway: str
    email: str | None = None
    name: str | None = None
    idempotency_key: str


class AttachMethodCall(Contract):
    request: SaveMethodRequest
    provider_customer_id: str


class DetachMethodRequest(Contract):
    method_id: str
