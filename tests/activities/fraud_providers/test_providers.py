"""Every screening adapter against its fake, through the port: allow, block, review, an outage,
refused credentials, and feedback after capture and after a dispute."""

from __future__ import annotations

from decimal import Decimal

import pytest

from activities.fraud_providers.base import ScreeningRejected, ScreeningUnavailable
from activities.fraud_providers.kount.fake import FakeKount
from tests.activities.fraud_providers.cases import PROVIDERS, build, screening_call, service
from workflows.domain import FraudDecision
from workflows.fraud_io import FeedbackCall, FeedbackKind
from workflows.money import Amount

pytestmark = pytest.mark.parametrize("name", PROVIDERS)


@pytest.mark.parametrize(
    ("email", "decision"),
    [
        ("ann@example.com", FraudDecision.ALLOW),
        ("block.me@example.com", FraudDecision.BLOCK),
        ("review.me@example.com", FraudDecision.REVIEW),
    ],
)
async def test_decision(name, email, decision):
    async with service(name) as svc:
        verdict = await svc.provider.screen(screening_call(name, email))
        assert verdict.decision is decision
        assert verdict.reference  # the service's id, for feedback and operators
        # Our scale: higher is riskier, whatever the service's own scale.
        if decision is FraudDecision.ALLOW:
            assert verdict.score < 50
        if decision is FraudDecision.BLOCK:
            assert verdict.score >= 90
        assert len(svc.fake.received) == 1


async def test_outage_is_unavailable(name):
    async with service(name) as svc:
        svc.fake.down = True
        with pytest.raises(ScreeningUnavailable):
            await svc.provider.screen(screening_call(name))


async def test_nothing_listening_is_unavailable(name):
    async with service(name) as svc:
        await svc.fake.stop()
        with pytest.raises(ScreeningUnavailable):
            await svc.provider.screen(screening_call(name))


async def test_wrong_credentials_are_refused(name):
    async with service(name) as svc:
        provider = build(name, svc.fake, api_key="not-the-key")
        try:
            with pytest.raises(ScreeningRejected):
                await provider.screen(screening_call(name))
        finally:
            await provider.aclose()
        assert svc.fake.received == []


async def test_feedback_after_capture_and_after_a_dispute(name):
    async with service(name) as svc:
        verdict = await svc.provider.screen(screening_call(name))
        common = dict(
            provider=name,
            payment_id="pay_1",
            order_id="order_1",
            amount=Amount(minor=4999, currency="USD"),
            gateway="mock",
            customer_id="cus_1",
            provider_payment_id="pi_1",
            reference=verdict.reference,
        )
        await svc.provider.feedback(FeedbackCall(kind=FeedbackKind.CAPTURED, **common))
        sent = [r.body for r in svc.fake.received[1:]]
        assert len(sent) == 1
        if name == "sift":
            assert sent[0]["$type"] == "$transaction" and sent[0]["$amount"] == 49_990_000
        elif name == "signifyd":
            assert sent[0]["transactions"][0]["amount"] == Decimal("49.99")
        else:
            assert sent[0]["transactions"][0]["authorizationStatus"]["authResult"] == "APPROVED"
        dispute = FeedbackCall(
            kind=FeedbackKind.DISPUTED, dispute_id="dp_1", dispute_reason="fraudulent", **common
        )
        if FeedbackKind.DISPUTED not in svc.provider.feedback_kinds:
            assert name == "kount"  # chargebacks reach Kount through the processor
            return
        await svc.provider.feedback(dispute)
        last = svc.fake.received[-1].body
        if name == "sift":
            assert (last["$type"], last["$chargeback_reason"], last["$order_id"]) == (
                "$chargeback",
                "$fraud",
                "order_1",
            )
        else:
            assert last["chargebackId"] == "dp_1"
            assert last["chargeback"]["amount"] == {"amount": Decimal("49.99"), "currencyCode": "USD"}


async def test_feedback_while_the_service_is_down_is_unavailable(name):
    async with service(name) as svc:
        verdict = await svc.provider.screen(screening_call(name))
        svc.fake.down = True
        call = FeedbackCall(
            provider=name,
            kind=FeedbackKind.CAPTURED,
            payment_id="pay_1",
            order_id="order_1",
            amount=Amount(minor=4999, currency="USD"),
            gateway="mock",
            reference=verdict.reference,
        )
        with pytest.raises(ScreeningUnavailable):
            await svc.provider.feedback(call)


async def test_zero_decimal_currency(name):
    async with service(name) as svc:
        await svc.provider.screen(screening_call(name, amount=Amount(minor=5000, currency="JPY")))
        body = svc.fake.received[0].body
        if name == "sift":
            assert body["$amount"] == 5_000_000_000  # micros of a yen
        elif name == "signifyd":
            assert body["purchase"]["totalPrice"] == Decimal("5000")
        else:
            assert isinstance(svc.fake, FakeKount)
            assert body["transactions"][0]["orderTotal"] == 5000
