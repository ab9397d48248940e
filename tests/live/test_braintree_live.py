"""Opt-in: the Braintree adapter against Braintree's sandbox.

    BRAINTREE_SANDBOX_MERCHANT_ID=... BRAINTREE_SANDBOX_PUBLIC_KEY=... BRAINTREE_SANDBOX_PRIVATE_KEY=... \\
        pytest tests/live/test_braintree_live.py -m live -q

Skipped without the variables; always the sandbox environment (this suite makes payments with the
sandbox's `fake-*` nonces). Not covered: refunds (the sandbox settles sales only in its daily batch,
and refunds need a settled sale) and webhooks (Braintree would need a public URL to post to).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from activities.gateways.braintree.adapter import BraintreeGateway
from activities.gateways.braintree.settings import BraintreeSettings
from tests.activities.gateways.helpers import GatewayCalls
from workflows.domain import CardMethod
from workflows.gateway_io import GatewayPaymentStatus

CREDENTIALS = {
    name: os.environ.get(f"BRAINTREE_SANDBOX_{name.upper()}", "")
    for name in ("merchant_id", "public_key", "private_key")
}

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        not all(CREDENTIALS.values()), reason="set BRAINTREE_SANDBOX_* to run against the sandbox"
    ),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]


@pytest_asyncio.fixture(loop_scope="session")
async def gateway() -> AsyncIterator[BraintreeGateway]:
    gateway = BraintreeGateway(BraintreeSettings.model_validate({**CREDENTIALS, "environment": "sandbox"}))
    yield gateway
    await gateway.aclose()


def calls(nonce: str) -> GatewayCalls:
    return GatewayCalls("braintree", "USD", lambda *_: CardMethod(token=nonce), minor=1_234)


def payment_id() -> str:
    return f"pay_live_{uuid.uuid4().hex[:16]}"


async def test_sale_found_again_by_our_order_id(gateway: BraintreeGateway) -> None:
    c = calls("fake-valid-nonce")
    ours = payment_id()
    sale = await gateway.authorize(c.authorize(ours))
    assert sale.status is GatewayPaymentStatus.SUCCEEDED and sale.captured_minor == 1_234
    again = await gateway.authorize(c.authorize(ours))  # the retried create: searched, not re-sent
    assert again.provider_payment_id == sale.provider_payment_id


async def test_authorize_partial_capture_and_void(gateway: BraintreeGateway) -> None:
    c = calls("fake-valid-nonce")
    held, captured = payment_id(), payment_id()
    hold = await gateway.authorize(c.authorize(held, capture=False))
    assert hold.status is GatewayPaymentStatus.AUTHORIZED
    voided = await gateway.cancel(c.cancel(held, provider_payment_id=hold.provider_payment_id))
    assert voided.status is GatewayPaymentStatus.CANCELLED
    hold = await gateway.authorize(c.authorize(captured, capture=False))
    part = await gateway.capture(c.capture(captured, 1_000, provider_payment_id=hold.provider_payment_id))
    assert (part.status, part.captured_minor) == (GatewayPaymentStatus.SUCCEEDED, 1_000)


async def test_decline(gateway: BraintreeGateway) -> None:
    result = await gateway.authorize(calls("fake-processor-declined-visa-nonce").authorize(payment_id()))
    assert result.status is GatewayPaymentStatus.DECLINED and result.failure is not None
