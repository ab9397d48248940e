"""pytest fixtures around the fake Stripe (activities/gateways/stripe/fake.py): import them into a test
module to use them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from activities.gateways.stripe.fake import FakeStripe


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stripe_server() -> AsyncIterator[FakeStripe]:
    """One fake per test module (starting a gateway's TLS-ready client is the slow part)."""
    async with FakeStripe() as server:
        yield server


@pytest.fixture
def fake_stripe(stripe_server: FakeStripe) -> FakeStripe:
    """The module's fake, emptied for this test."""
    stripe_server.reset()
    return stripe_server


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stripe_gateway(stripe_server: FakeStripe) -> AsyncIterator[Any]:
    from activities.gateways.stripe.adapter import StripeGateway
    from activities.gateways.stripe.settings import StripeSettings

    gateway = StripeGateway(
        StripeSettings.model_validate(stripe_server.gateway_section(statement_descriptor_suffix="ORDER"))
    )
    yield gateway
    await gateway.aclose()
