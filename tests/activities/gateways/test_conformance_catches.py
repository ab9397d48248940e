"""The conformance checks catch what they are for: each deliberately broken gateway below (a real
adapter with one classic bug) runs through the same check the suite runs, and the check fails.
A check that passed here would be a check that proves nothing."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace

import pytest

from activities.gateways.alipay.adapter import AlipayGateway
from activities.gateways.alipay.testkit import Kit as AlipayKit
from activities.gateways.base import GatewayConfigError
from activities.gateways.mock.adapter import MockGateway
from activities.gateways.mock.settings import MockSettings
from activities.gateways.mock.testkit import Kit as MockKit
from activities.gateways.plugins import PLUGINS
from activities.gateways.stripe.adapter import StripeGateway
from activities.gateways.stripe.testkit import Kit as StripeKit
from activities.gateways.testkit import GatewayFactory, GatewayKit
from activities.gateways.wechat_pay.adapter import WechatPayGateway
from activities.gateways.wechat_pay.testkit import Kit as WechatPayKit
from tests.activities.gateways import conformance
from workflows.gateway_io import (
    AuthorizeCall,
    CaptureCall,
    GatewayEvent,
    GatewayPaymentStatus,
    GatewayResult,
    LookupCall,
    RefundCall,
    RefundResult,
)
from workflows.money import Amount, exponent

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")


def _fresh_key() -> str:
    return f"key-{uuid.uuid4().hex}"


class ForgetsIdempotencyKey(MockGateway):
    """Mints a new idempotency key per attempt instead of using the workflow's."""

    async def authorize(self, call: AuthorizeCall) -> GatewayResult:
        return await super().authorize(call.model_copy(update={"idempotency_key": _fresh_key()}))


class StripeForgetsIdempotencyKey(StripeGateway):
    """The same bug on Stripe, where a retry after a lost answer then makes a second charge."""

    async def authorize(self, call: AuthorizeCall) -> GatewayResult:
        return await super().authorize(call.model_copy(update={"idempotency_key": _fresh_key()}))


class SendsMajorUnits(StripeGateway):
    """Sends whole currency units where Stripe wants minor units."""

    async def authorize(self, call: AuthorizeCall) -> GatewayResult:
        major = call.amount.minor // 10 ** exponent(call.amount.currency)
        wrong = Amount(minor=major, currency=call.amount.currency)
        return await super().authorize(call.model_copy(update={"amount": wrong}))


class IgnoresTheSignatureTime(MockGateway):
    """Verifies the signature but not its time (a verifier with its tolerance turned off)."""

    def __init__(self, settings: MockSettings) -> None:
        super().__init__(settings.model_copy(update={"webhook_tolerance_seconds": 10**9}))


class SkipsTheSignature(MockGateway):
    """Reads the notification without verifying it."""

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[GatewayEvent]:
        return [self._event(body)]


class MockRefundsUnderFreshIds(MockGateway):
    """Names each refund attempt anew at the provider, and reports our refund id back."""

    async def refund(self, call: RefundCall) -> RefundResult:
        fresh = call.model_copy(update={"refund_id": f"{call.refund_id}-{uuid.uuid4().hex[:8]}"})
        result = await super().refund(fresh.model_copy(update={"idempotency_key": _fresh_key()}))
        return result.model_copy(update={"refund_id": call.refund_id})


class AlipayRefundsUnderFreshIds(AlipayGateway):
    """A new out_request_no per attempt: AliPay sees a new partial refund each time."""

    async def refund(self, call: RefundCall) -> RefundResult:
        fresh = call.model_copy(update={"refund_id": f"{call.refund_id}-{uuid.uuid4().hex[:8]}"})
        return (await super().refund(fresh)).model_copy(update={"refund_id": call.refund_id})


class CapturesTheWholeHold(MockGateway):
    """Captures everything authorized whatever the amount asked, and reports the amount asked."""

    async def capture(self, call: CaptureCall) -> GatewayResult:
        [charge] = self.charges_for(call.payment_id)
        whole = call.amount.with_minor(charge.authorized_minor)
        result = await super().capture(call.model_copy(update={"amount": whole}))
        return result.model_copy(update={"captured_minor": call.amount.minor})


class FakesManualCapture(WechatPayGateway):
    """Pretends to hold: an authorize-only call becomes a sale, and capture answers success."""

    async def authorize(self, call: AuthorizeCall) -> GatewayResult:
        return await super().authorize(call.model_copy(update={"capture": True}))

    async def capture(self, call: CaptureCall) -> GatewayResult:
        return await self.lookup(
            LookupCall(gateway=call.gateway, payment_id=call.payment_id, amount=call.amount)
        )


class LosesOurReference(StripeGateway):
    """Looks a payment up only by Stripe's id, never by ours."""

    async def lookup(self, call: LookupCall) -> GatewayResult:
        if call.provider_payment_id is None:
            return GatewayResult(status=GatewayPaymentStatus.NOT_FOUND)
        return await super().lookup(call)


Check = Callable[[GatewayKit, str], Awaitable[None]]

BROKEN = [
    (MockKit, ForgetsIdempotencyKey, conformance.check_retried_sale_charges_once),
    (StripeKit, StripeForgetsIdempotencyKey, conformance.check_lost_create_answer),
    (StripeKit, StripeForgetsIdempotencyKey, conformance.check_retried_sale_charges_once),
    (StripeKit, SendsMajorUnits, conformance.check_amounts_in_minor_units),
    (StripeKit, SendsMajorUnits, conformance.check_sale),
    (MockKit, IgnoresTheSignatureTime, conformance.check_stale_webhook_rejected),
    (MockKit, IgnoresTheSignatureTime, conformance.check_replayed_webhook_rejected),
    (MockKit, SkipsTheSignature, conformance.check_tampered_webhook_rejected),
    (MockKit, MockRefundsUnderFreshIds, conformance.check_retried_refund_refunds_once),
    (AlipayKit, AlipayRefundsUnderFreshIds, conformance.check_retried_refund_refunds_once),
    (AlipayKit, AlipayRefundsUnderFreshIds, conformance.check_lost_refund_answer),
    (MockKit, CapturesTheWholeHold, conformance.check_partial_capture),
    (WechatPayKit, FakesManualCapture, conformance.check_authorize_and_capture),
    (StripeKit, LosesOurReference, conformance.check_lost_create_answer),
    (StripeKit, LosesOurReference, conformance.check_lookup_by_our_reference),
]


@pytest.mark.parametrize(
    ("kit_class", "broken", "check"),
    [pytest.param(*case, id=f"{case[1].__name__}-{case[2].__name__}") for case in BROKEN],
)
async def test_conformance_check_catches_a_broken_gateway(
    kit_class: type[GatewayKit], broken: GatewayFactory, check: Check, unique: str
) -> None:
    async with kit_class(build=broken) as kit:
        with pytest.raises(AssertionError):
            await check(kit, unique)


def test_a_plugin_without_a_testkit_cannot_join_the_suite() -> None:
    kitless = replace(PLUGINS["mock"], testkit=None)
    with pytest.raises(GatewayConfigError, match="has no conformance testkit"):
        kitless.testkit_class()
    not_a_kit = replace(PLUGINS["mock"], testkit="activities.gateways.mock.adapter:MockGateway")
    with pytest.raises(GatewayConfigError, match="is not a GatewayKit"):
        not_a_kit.testkit_class()
