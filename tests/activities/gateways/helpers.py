"""What the gateway adapter suites share: a fixture serving a fake provider, and the activity calls
PaymentWorkflow makes, with the ids and idempotency keys it derives."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import pytest_asyncio

from activities.gateways.base import Gateway
from activities.gateways.http import HttpSettings
from workflows.domain import CardMethod, PaymentMethod, WalletMethod
from workflows.gateway_io import (
    AuthorizeCall,
    CancelCall,
    CaptureCall,
    LookupCall,
    RefundCall,
    RefundLookupCall,
)
from workflows.money import Amount

# Timeouts of a second, so that a fake answering 1.5 s late times the adapter out quickly.
QUICK_HTTP = HttpSettings(timeout_seconds=1.0, connect_timeout_seconds=1.0)


def serving(factory: Callable[[], AbstractAsyncContextManager[Any]], *, scope: str = "function") -> Any:
    """A fixture that runs the fake provider `factory()` builds on 127.0.0.1 for `scope`; assign it
    to the fixture's name: `fake = serving(FakeAlipay)`."""

    @pytest_asyncio.fixture(scope=scope, loop_scope="session")
    async def served() -> AsyncIterator[Any]:
        async with factory() as server:
            yield server

    return served


# The customer's deadline on every authorize a test does not give one: fixed for the session, so
# that a call built again for a retry is the very call it repeats (the workflow computes it once;
# providers refuse the same order number with another time_expire).
DEADLINE = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)


def pid(unique: str) -> str:
    """A payment id as the API mints them."""
    return f"pay_{unique}"


def key(payment_id: str, operation: str) -> str:
    """The idempotency key PaymentWorkflow derives for `operation` on the payment."""
    return f"payment-{payment_id}:{operation}"


@dataclass(frozen=True)
class GatewayCalls:
    """The activity calls PaymentWorkflow makes to one gateway: our ids, amounts in minor units of
    the gateway's currency, the idempotency keys it derives and a customer deadline on authorize.
    Keyword arguments override any field of the call."""

    gateway: str
    currency: str
    method: Callable[..., PaymentMethod]  # how the customer pays; its arguments pick a flow or a card
    minor: int  # the amount when a test does not say
    refund_reason: str | None = None  # the reason a merchant gives when a test does not say

    def amount(self, minor: int | None = None) -> Amount:
        return Amount(minor=self.minor if minor is None else minor, currency=self.currency)

    def authorize(self, payment_id: str, *how: Any, minor: int | None = None, **fields: Any) -> AuthorizeCall:
        values: dict[str, Any] = {
            "gateway": self.gateway,
            "payment_id": payment_id,
            "order_id": f"order_{payment_id}",
            "amount": self.amount(minor),
            "method": self.method(*how),
            "capture": True,
            "idempotency_key": key(payment_id, "authorize"),
            "expires_at": DEADLINE,
        }
        return AuthorizeCall(**(values | fields))

    def lookup(self, payment_id: str, *how: Any, minor: int | None = None, **fields: Any) -> LookupCall:
        values: dict[str, Any] = {
            "gateway": self.gateway,
            "payment_id": payment_id,
            "amount": self.amount(minor),
            "method": self.method(*how),  # lookups carry it: AliPay tells "not opened yet" by the flow
        }
        return LookupCall(**(values | fields))

    def capture(self, payment_id: str, minor: int | None = None, **fields: Any) -> CaptureCall:
        values: dict[str, Any] = {
            "gateway": self.gateway,
            "payment_id": payment_id,
            "provider_payment_id": None,
            "amount": self.amount(minor),
            "idempotency_key": key(payment_id, "capture"),
        }
        return CaptureCall(**(values | fields))

    def cancel(self, payment_id: str, reason: str = "abandoned", **fields: Any) -> CancelCall:
        values: dict[str, Any] = {
            "gateway": self.gateway,
            "payment_id": payment_id,
            "provider_payment_id": None,
            "reason": reason,
            "idempotency_key": key(payment_id, "cancel"),
        }
        return CancelCall(**(values | fields))

    def refund(self, payment_id: str, refund_id: str, minor: int, **fields: Any) -> RefundCall:
        values: dict[str, Any] = {
            "gateway": self.gateway,
            "payment_id": payment_id,
            "provider_payment_id": None,
            "refund_id": refund_id,
            "amount": self.amount(minor),
            "reason": self.refund_reason,
            "idempotency_key": key(payment_id, f"refund:{refund_id}"),
        }
        return RefundCall(**(values | fields))

    def refund_lookup(self, payment_id: str, refund_id: str, **fields: Any) -> RefundLookupCall:
        values: dict[str, Any] = {
            "gateway": self.gateway,
            "payment_id": payment_id,
            "provider_payment_id": None,
            "refund_id": refund_id,
        }
        return RefundLookupCall(**(values | fields))


ALIPAY = GatewayCalls(
    "alipay",
    "CNY",
    lambda flow="precreate": WalletMethod(wallet="alipay", flow=flow),
    minor=8888,
    refund_reason="customer request",
)
WECHAT_PAY = GatewayCalls(
    "wechat_pay",
    "CNY",
    lambda flow="native": WalletMethod(wallet="wechat_pay", flow=flow),
    minor=8888,
    refund_reason="customer request",
)
STRIPE = GatewayCalls("stripe", "USD", lambda token="pm_card_visa": CardMethod(token=token), minor=4999)


class WalletFake(Protocol):
    def pay(self, payment_id: str) -> Any: ...


async def paid(
    fake: WalletFake,
    gateway: Gateway,
    calls: GatewayCalls,
    payment_id: str,
    minor: int | None = None,
    **fields: Any,
) -> None:
    """A wallet payment the customer has paid: the order created through the adapter, then paid at
    the fake provider (the customer's side)."""
    await gateway.authorize(calls.authorize(payment_id, minor=minor, **fields))
    fake.pay(payment_id)
