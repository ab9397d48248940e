"""Opt-in: the Airwallex adapter against Airwallex's sandbox (api-demo.airwallex.com).

    AIRWALLEX_SANDBOX_CLIENT_ID=... AIRWALLEX_SANDBOX_API_KEY=... \
    AIRWALLEX_SANDBOX_PAYMENT_METHOD=mtd_... pytest tests/live/test_airwallex_live.py -m live -q

Skipped without the credentials; always against the sandbox host, never production. The sale needs
a card payment method id created in the sandbox (durapay never handles card numbers), so it is
skipped without `AIRWALLEX_SANDBOX_PAYMENT_METHOD`. Webhooks are not covered (Airwallex would need a
public URL to deliver to); the fake server's suites cover their verification and mapping.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from activities.gateways.airwallex.adapter import AirwallexGateway
from activities.gateways.airwallex.settings import SANDBOX_API_BASE, AirwallexSettings
from workflows.domain import CardMethod, RefundStatus
from workflows.gateway_io import AuthorizeCall, GatewayPaymentStatus, LookupCall, RefundCall
from workflows.money import Amount

CLIENT_ID = os.environ.get("AIRWALLEX_SANDBOX_CLIENT_ID", "")
API_KEY = os.environ.get("AIRWALLEX_SANDBOX_API_KEY", "")
PAYMENT_METHOD = os.environ.get("AIRWALLEX_SANDBOX_PAYMENT_METHOD", "")

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        not (CLIENT_ID and API_KEY),
        reason="set AIRWALLEX_SANDBOX_CLIENT_ID and AIRWALLEX_SANDBOX_API_KEY to run against the sandbox",
    ),
]


@pytest_asyncio.fixture
async def gateway() -> AsyncIterator[AirwallexGateway]:
    # The webhook secret is required by the settings but unused here: nothing is delivered to us.
    settings = AirwallexSettings(
        client_id=CLIENT_ID,
        api_key=API_KEY,
        webhook_secret="unused-in-live-tests",
        sandbox=True,
        enabled=True,
    )
    assert settings.endpoint == SANDBOX_API_BASE
    gw = AirwallexGateway(settings)
    yield gw
    await gw.aclose()


def payment_id() -> str:
    return f"pay_live_{uuid.uuid4().hex[:16]}"


async def test_login_and_a_payment_never_made_is_not_found(gateway):
    unknown = payment_id()
    result = await gateway.lookup(
        LookupCall(gateway="airwallex", payment_id=unknown, amount=Amount.of("1.00", "USD"))
    )
    assert result.status is GatewayPaymentStatus.NOT_FOUND


@pytest.mark.skipif(
    not PAYMENT_METHOD, reason="set AIRWALLEX_SANDBOX_PAYMENT_METHOD (a sandbox card mtd_...)"
)
async def test_sale_is_idempotent_found_by_our_reference_and_refundable(gateway):
    pid = payment_id()
    sale = AuthorizeCall(
        gateway="airwallex",
        payment_id=pid,
        order_id=f"order_{pid}",
        amount=Amount.of("12.34", "USD"),
        method=CardMethod(token=PAYMENT_METHOD),
        capture=True,
        idempotency_key=f"payment-{pid}:authorize",
    )

    paid = await gateway.authorize(sale)
    again = await gateway.authorize(sale)
    found = await gateway.lookup(LookupCall(gateway="airwallex", payment_id=pid, amount=sale.amount))

    assert paid.status is GatewayPaymentStatus.SUCCEEDED and paid.captured_minor == 1234
    assert again.provider_payment_id == found.provider_payment_id == paid.provider_payment_id
    refund = await gateway.refund(
        RefundCall(
            gateway="airwallex",
            payment_id=pid,
            provider_payment_id=paid.provider_payment_id,
            refund_id="ref_1",
            amount=Amount.of("2.00", "USD"),
            idempotency_key=f"payment-{pid}:refund:ref_1",
        )
    )
    assert refund.status in (RefundStatus.SUCCEEDED, RefundStatus.PENDING)
