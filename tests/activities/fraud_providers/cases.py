"""The three screening services, each as (its fake server, an adapter pointed at it), so that one
set of tests holds every adapter to the same port."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from pydantic import SecretStr

from activities.fraud_providers.base import FraudProvider
from activities.fraud_providers.fake_server import FakeServer
from activities.fraud_providers.kount.adapter import KountProvider, KountSettings
from activities.fraud_providers.kount.fake import FakeKount
from activities.fraud_providers.sift.adapter import SiftProvider, SiftSettings
from activities.fraud_providers.sift.fake import FakeSift
from activities.fraud_providers.signifyd.adapter import SignifydProvider, SignifydSettings
from activities.fraud_providers.signifyd.fake import FakeSignifyd
from workflows.domain import CardMethod, PaymentInput
from workflows.fraud_io import ScreeningCall
from workflows.money import Amount

PROVIDERS = ("sift", "signifyd", "kount")


def build(name: str, fake: FakeServer, *, api_key: str | None = None) -> FraudProvider:
    """An adapter for `fake` (with another API key than the fake's when `api_key` is given)."""
    if isinstance(fake, FakeSift):
        return SiftProvider(
            SiftSettings(
                api_key=SecretStr(api_key or fake.api_key), account_id=fake.account_id, base_url=fake.url
            ),
            review_threshold=50,
            block_threshold=90,
        )
    if isinstance(fake, FakeSignifyd):
        return SignifydProvider(
            SignifydSettings(api_key=SecretStr(api_key or fake.api_key), base_url=fake.url)
        )
    assert isinstance(fake, FakeKount)
    return KountProvider(
        KountSettings(api_key=SecretStr(api_key or fake.api_key), base_url=fake.url, token_url=fake.token_url)
    )


def new_fake(name: str) -> FakeServer:
    return {"sift": FakeSift, "signifyd": FakeSignifyd, "kount": FakeKount}[name]()


@dataclass
class Service:
    fake: FakeServer
    provider: FraudProvider


@asynccontextmanager
async def service(name: str) -> AsyncIterator[Service]:
    async with new_fake(name) as fake:
        provider = build(name, fake)
        try:
            yield Service(fake, provider)
        finally:
            await provider.aclose()


def screening_call(provider: str, email: str = "ann@example.com", **fields) -> ScreeningCall:
    values = dict(
        provider=provider,
        payment_id="pay_1",
        order_id="order_1",
        amount=Amount(minor=4999, currency="USD"),
        method_type="card",
        gateway="mock",
        card_last4="4242",
        card_fingerprint="fp_1",
        customer_id="cus_1",
        customer_email=email,
        customer_ip="203.0.113.7",
    )
    values.update(fields)
    return ScreeningCall(**values)


def call_for(inp: PaymentInput, provider: str) -> ScreeningCall:
    card = inp.method if isinstance(inp.method, CardMethod) else None
    return screening_call(
        provider,
        email=inp.customer_email or "",
        payment_id=inp.payment_id,
        card_last4=card.last4 if card else None,
    )
