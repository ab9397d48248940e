"""Opt-in: the Stripe adapter against Stripe's own test mode.

    STRIPE_TEST_SECRET_KEY=sk_test_... pytest tests/live/test_stripe_live.py -m live -q

Skipped without the variable, and refused for anything but a test-mode key. Webhooks are not covered
here (Stripe would need a public URL to deliver to); the fake server's suite covers their mapping.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from activities.gateways.stripe.adapter import StripeGateway
from activities.gateways.stripe.settings import StripeSettings
from workflows.domain import CardMethod, NextActionType, RefundStatus
from workflows.gateway_io import (
    AuthorizeCall,
    CancelCall,
    CaptureCall,
    GatewayPaymentStatus,
    LookupCall,
    RefundCall,
)
from workflows.money import Amount

SECRET_KEY = os.environ.get("STRIPE_TEST_SECRET_KEY", "")

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not SECRET_KEY, reason="set STRIPE_TEST_SECRET_KEY to run against Stripe test mode"),
    pytest.mark.skipif(
        bool(SECRET_KEY) and not SECRET_KEY.startswith(("sk_test_", "rk_test_")),
        reason="STRIPE_TEST_SECRET_KEY must be a test-mode key: this suite makes payments",
    ),
    pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning"),
]


@pytest_asyncio.fixture
async def gateway() -> AsyncIterator[StripeGateway]:
    # The webhook secret is required by the settings but unused here: nothing is delivered to us.
    settings = StripeSettings(
        secret_key=SECRET_KEY, webhook_secret="whsec_unused_in_live_tests", enabled=True
    )
    gw = StripeGateway(settings)
    yield gw
    await gw.aclose()


def call(token: str, *, capture: bool = True, **extra) -> AuthorizeCall:
    payment_id = f"pay_live_{uuid.uuid4().hex[:16]}"
    return AuthorizeCall(
        gateway="stripe",
        payment_id=payment_id,
        order_id=f"order_{payment_id}",
        amount=Amount.of("12.34", "USD"),
        method=CardMethod(token=token),
        capture=capture,
        idempotency_key=f"payment-{payment_id}:authorize",
        description="durapay live test",
        **extra,
    )


async def test_sale_is_idempotent_and_refundable(gateway):
    sale = call("pm_card_visa")

    paid = await gateway.authorize(sale)
    again = await gateway.authorize(sale)

    assert paid.status is GatewayPaymentStatus.SUCCEEDED and paid.captured_minor == 1234
    assert again.provider_payment_id == paid.provider_payment_id
    looked = await gateway.lookup(
        LookupCall(
            gateway="stripe",
            payment_id=sale.payment_id,
            provider_payment_id=paid.provider_payment_id,
            amount=sale.amount,
        )
    )
    assert looked.status is GatewayPaymentStatus.SUCCEEDED
    for n, amount in enumerate(("2.00", "3.00"), start=1):
        refund = await gateway.refund(
            RefundCall(
                gateway="stripe",
                payment_id=sale.payment_id,
                provider_payment_id=paid.provider_payment_id,
                refund_id=f"re_{n}",
                amount=Amount.of(amount, "USD"),
                reason="requested_by_customer",
                idempotency_key=f"payment-{sale.payment_id}:refund:re_{n}",
            )
        )
        assert refund.status in (RefundStatus.SUCCEEDED, RefundStatus.PENDING)


async def test_decline_and_three_ds(gateway):
    declined = await gateway.authorize(call("pm_card_chargeDeclinedInsufficientFunds"))
    challenged = await gateway.authorize(
        call("pm_card_threeDSecure2Required", return_url="https://example.com/back")
    )

    assert declined.status is GatewayPaymentStatus.DECLINED
    assert declined.failure is not None and declined.failure.decline_code == "insufficient_funds"
    assert challenged.status is GatewayPaymentStatus.REQUIRES_ACTION
    assert (
        challenged.next_action is not None and challenged.next_action.type is NextActionType.REDIRECT_TO_URL
    )


async def test_manual_capture_and_cancel(gateway):
    held_call = call("tok_visa", capture=False)
    held = await gateway.authorize(held_call)
    assert held.status is GatewayPaymentStatus.AUTHORIZED

    captured = await gateway.capture(
        CaptureCall(
            gateway="stripe",
            payment_id=held_call.payment_id,
            provider_payment_id=held.provider_payment_id,
            amount=Amount.of("10.00", "USD"),
            idempotency_key=f"payment-{held_call.payment_id}:capture",
        )
    )
    assert (captured.status, captured.captured_minor) == (GatewayPaymentStatus.SUCCEEDED, 1000)

    void_call = call("pm_card_mastercard", capture=False)
    voided = await gateway.authorize(void_call)
    cancelled = await gateway.cancel(
        CancelCall(
            gateway="stripe",
            payment_id=void_call.payment_id,
            provider_payment_id=voided.provider_payment_id,
            reason="requested_by_customer",
            idempotency_key=f"payment-{void_call.payment_id}:cancel",
        )
    )
    assert cancelled.status is GatewayPaymentStatus.CANCELLED


async def test_customer_cards(gateway):
    customer = await gateway.create_customer(
        email="live-test@example.com",
        name="durapay live test",
        idempotency_key=f"customer-{uuid.uuid4().hex}",
    )
    saved = await gateway.attach_payment_method(customer_id=customer.id, payment_method="pm_card_visa")

    assert [m.id for m in await gateway.list_payment_methods(customer_id=customer.id)] == [saved.id]
    await gateway.detach_payment_method(payment_method=saved.id)
    assert await gateway.list_payment_methods(customer_id=customer.id) == []
