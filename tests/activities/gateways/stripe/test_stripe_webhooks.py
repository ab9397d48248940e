"""Stripe webhooks: signature checks with the SDK (tolerance, rotation) and the mapping of every
event we act on to `GatewayEvent`, fed with the events the fake emits for real flows."""

from __future__ import annotations

import json
import time
from contextlib import aclosing
from datetime import UTC, datetime

import pytest

from activities.gateways.base import WebhookVerificationError
from activities.gateways.stripe.adapter import StripeGateway
from activities.gateways.stripe.fake import FakeStripe
from activities.gateways.stripe.settings import StripeSettings
from tests.activities.gateways.helpers import STRIPE, pid
from tests.activities.gateways.stripe.stripe_fixtures import (
    fake_stripe,
    stripe_gateway,
    stripe_server,
)
from workflows.gateway_io import GatewayEventKind, GatewayResult, RefundResult
from workflows.money import Amount

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")


def parse(gateway: StripeGateway, fake: FakeStripe, event: dict, **sign_args):
    headers, body = fake.encode_event(event, **sign_args)
    return gateway.parse_webhook(headers, body)


def only(fake: FakeStripe, event_type: str) -> dict:
    [event] = fake.events_of(event_type)
    return event


async def authorize(gateway: StripeGateway, unique: str, *token: str, **fields) -> tuple[str, GatewayResult]:
    """A 49.99 USD card payment: our payment id and the adapter's result."""
    call = STRIPE.authorize(pid(unique), *token, **fields)
    return call.payment_id, await gateway.authorize(call)


async def refund(
    gateway: StripeGateway, payment_id: str, intent_id: str, refund_id: str, minor: int
) -> RefundResult:
    return await gateway.refund(STRIPE.refund(payment_id, refund_id, minor, provider_payment_id=intent_id))


# --- mapping -----------------------------------------------------------------------------------------


async def test_payment_succeeded(stripe_gateway, fake_stripe, unique):
    payment_id, result = await authorize(stripe_gateway, unique)
    event = only(fake_stripe, "payment_intent.succeeded")

    [mapped] = parse(stripe_gateway, fake_stripe, event)

    assert mapped.kind is GatewayEventKind.PAYMENT_SUCCEEDED
    assert (mapped.gateway, mapped.event_id, mapped.provider_type) == ("stripe", event["id"], event["type"])
    assert (mapped.payment_id, mapped.provider_payment_id) == (payment_id, result.provider_payment_id)
    assert mapped.amount == Amount.of("49.99", "USD")
    assert mapped.occurred_at == datetime.fromtimestamp(event["created"], UTC)


async def test_payment_failed_carries_the_decline(stripe_gateway, fake_stripe, unique):
    payment_id, _ = await authorize(stripe_gateway, unique, "pm_card_chargeDeclinedInsufficientFunds")

    [mapped] = parse(stripe_gateway, fake_stripe, only(fake_stripe, "payment_intent.payment_failed"))

    assert mapped.kind is GatewayEventKind.PAYMENT_FAILED
    assert mapped.payment_id == payment_id
    assert mapped.failure is not None
    assert (mapped.failure.code, mapped.failure.decline_code) == ("card_declined", "insufficient_funds")


async def test_requires_action_authorized_and_cancelled(stripe_gateway, fake_stripe, unique):
    payment_id, pending = await authorize(
        stripe_gateway, unique, "pm_card_threeDSecure2Required", capture=False
    )
    fake_stripe.complete_three_ds(pending.provider_payment_id)
    await stripe_gateway.cancel(
        STRIPE.cancel(payment_id, "fraudulent", provider_payment_id=pending.provider_payment_id)
    )

    mapped = [parse(stripe_gateway, fake_stripe, e)[0] for e in fake_stripe.events]

    assert [(m.provider_type, m.kind) for m in mapped] == [
        ("payment_intent.requires_action", GatewayEventKind.PAYMENT_REQUIRES_ACTION),
        ("payment_intent.amount_capturable_updated", GatewayEventKind.PAYMENT_AUTHORIZED),
        ("payment_intent.canceled", GatewayEventKind.PAYMENT_CANCELLED),
    ]
    assert all(m.payment_id == payment_id for m in mapped)
    assert mapped[1].amount == Amount.of("49.99", "USD")


async def test_refund_events_name_our_refund(stripe_gateway, fake_stripe, unique):
    payment_id, paid = await authorize(stripe_gateway, unique)
    made = await refund(stripe_gateway, payment_id, paid.provider_payment_id, "re_ours_1", 1000)

    [created] = parse(stripe_gateway, fake_stripe, only(fake_stripe, "refund.created"))
    [charge_refunded] = parse(stripe_gateway, fake_stripe, only(fake_stripe, "charge.refunded"))

    assert created.kind is GatewayEventKind.REFUND_SUCCEEDED
    assert (created.refund_id, created.provider_refund_id) == ("re_ours_1", made.provider_refund_id)
    assert (created.payment_id, created.provider_payment_id) == (payment_id, paid.provider_payment_id)
    assert created.amount == Amount.of("10.00", "USD")
    # Current API versions do not list the refunds on the charge: recorded, not acted on.
    assert charge_refunded.kind is GatewayEventKind.UNKNOWN
    assert charge_refunded.provider_payment_id == paid.provider_payment_id


async def test_charge_refunded_with_embedded_refunds_maps_each(stripe_gateway, fake_stripe, unique):
    payment_id, paid = await authorize(stripe_gateway, unique)
    first = await refund(stripe_gateway, payment_id, paid.provider_payment_id, "re_a", 1000)
    second = await refund(stripe_gateway, payment_id, paid.provider_payment_id, "re_b", 500)
    # The shape of API versions before 2022-11-15, which embedded the charge's refunds.
    charge = dict(fake_stripe.events_of("charge.refunded")[-1]["data"]["object"])
    charge["refunds"] = {
        "object": "list",
        "data": [
            fake_stripe.refunds[first.provider_refund_id],
            fake_stripe.refunds[second.provider_refund_id],
        ],
    }
    event = fake_stripe.build_event("charge.refunded", charge)

    mapped = parse(stripe_gateway, fake_stripe, event)

    assert [(m.kind, m.refund_id) for m in mapped] == [
        (GatewayEventKind.REFUND_SUCCEEDED, "re_a"),
        (GatewayEventKind.REFUND_SUCCEEDED, "re_b"),
    ]
    assert len({m.event_id for m in mapped}) == 2
    assert all(m.event_id.startswith(event["id"]) for m in mapped)


async def test_refund_updated_and_refund_failed(stripe_gateway, fake_stripe, unique):
    fake_stripe.refund_status = "pending"
    payment_id, paid = await authorize(stripe_gateway, unique)
    ok = await refund(stripe_gateway, payment_id, paid.provider_payment_id, "re_ok", 1000)
    bad = await refund(stripe_gateway, payment_id, paid.provider_payment_id, "re_bad", 1000)
    fake_stripe.settle_refund(ok.provider_refund_id)
    fake_stripe.settle_refund(bad.provider_refund_id, succeed=False)

    pending = [parse(stripe_gateway, fake_stripe, e)[0] for e in fake_stripe.events_of("refund.created")]
    [updated] = parse(stripe_gateway, fake_stripe, only(fake_stripe, "refund.updated"))
    [failed] = parse(stripe_gateway, fake_stripe, only(fake_stripe, "refund.failed"))

    assert {m.kind for m in pending} == {GatewayEventKind.UNKNOWN}  # nothing decided yet
    assert (updated.kind, updated.refund_id) == (GatewayEventKind.REFUND_SUCCEEDED, "re_ok")
    assert (failed.kind, failed.refund_id) == (GatewayEventKind.REFUND_FAILED, "re_bad")
    assert failed.failure is not None and "expired_or_canceled_card" in failed.failure.message


async def test_dispute_opened_and_closed(stripe_gateway, fake_stripe, unique):
    _, paid = await authorize(stripe_gateway, unique)
    opened_event = fake_stripe.open_dispute(paid.provider_payment_id, reason="product_not_received")
    closed_event = fake_stripe.close_dispute(opened_event["data"]["object"]["id"], status="won")

    [opened] = parse(stripe_gateway, fake_stripe, opened_event)
    [closed] = parse(stripe_gateway, fake_stripe, closed_event)

    assert opened.kind is GatewayEventKind.DISPUTE_OPENED
    assert (opened.dispute_status, opened.dispute_reason) == ("needs_response", "product_not_received")
    assert opened.dispute_id == opened_event["data"]["object"]["id"]
    # Disputes carry only Stripe's ids; the receiver maps the intent id to our payment.
    assert (opened.payment_id, opened.provider_payment_id) == (None, paid.provider_payment_id)
    assert opened.amount == Amount.of("49.99", "USD")
    assert (closed.kind, closed.dispute_status, closed.dispute_id) == (
        GatewayEventKind.DISPUTE_CLOSED,
        "won",
        opened.dispute_id,
    )


@pytest.mark.parametrize(
    "event",
    [
        {
            "id": "evt_1",
            "object": "event",
            "type": "customer.created",
            "created": 1,
            "data": {"object": {"id": "cus_1"}},
        },
        {"id": "evt_2", "object": "event", "type": "charge.dispute.funds_withdrawn", "data": {"object": {}}},
        {"id": "evt_3", "object": "v2.core.event", "type": "v1.billing.meter.error_report_triggered"},
    ],
)
def test_events_we_do_not_act_on_are_acknowledged_as_unknown(stripe_gateway, fake_stripe, event):
    [mapped] = parse(stripe_gateway, fake_stripe, event)

    assert mapped.kind is GatewayEventKind.UNKNOWN
    assert (mapped.event_id, mapped.provider_type) == (event["id"], event["type"])


def test_amounts_in_events_follow_stripes_currency_rules(stripe_gateway, fake_stripe):
    intent = {
        "id": "pi_1",
        "object": "payment_intent",
        "amount_received": 50000,
        "currency": "isk",
        "metadata": {},
    }

    [mapped] = parse(stripe_gateway, fake_stripe, fake_stripe.build_event("payment_intent.succeeded", intent))

    assert mapped.amount == Amount.of("500", "ISK")


# --- verification ----------------------------------------------------------------------------------------


def sample(fake: FakeStripe) -> dict:
    intent = {
        "id": "pi_x",
        "object": "payment_intent",
        "amount_received": 100,
        "currency": "usd",
        "metadata": {},
    }
    return fake.build_event("payment_intent.succeeded", intent)


def test_the_raw_pretty_printed_body_is_what_is_verified(stripe_gateway, fake_stripe):
    headers, body = fake_stripe.encode_event(sample(fake_stripe))
    assert b'\n  "id"' in body

    assert stripe_gateway.parse_webhook({"stripe-signature": headers["Stripe-Signature"]}, body)
    compact = json.dumps(json.loads(body)).encode()
    with pytest.raises(WebhookVerificationError):
        stripe_gateway.parse_webhook(headers, compact)


@pytest.mark.parametrize(
    "header",
    [None, "", "garbage", "t=notanumber,v1=abc", "v1=" + "0" * 64, "t=1700000000", "t=1700000000,v0=abc"],
)
def test_missing_or_malformed_signatures_are_refused(stripe_gateway, fake_stripe, header):
    _, body = fake_stripe.encode_event(sample(fake_stripe))
    headers = {} if header is None else {"Stripe-Signature": header}

    with pytest.raises(WebhookVerificationError):
        stripe_gateway.parse_webhook(headers, body)


def test_a_signature_with_another_secret_is_refused(stripe_gateway, fake_stripe):
    with pytest.raises(WebhookVerificationError):
        parse(stripe_gateway, fake_stripe, sample(fake_stripe), secrets_=["whsec_someone_else"])


@pytest.mark.parametrize(
    ("age_seconds", "accepted"),
    [(299, True), (301, False), (-200, True), (-301, False)],
)
def test_timestamp_tolerance_is_300_seconds_both_ways(stripe_gateway, fake_stripe, age_seconds, accepted):
    timestamp = int(time.time()) - age_seconds
    event = sample(fake_stripe)

    if accepted:
        assert parse(stripe_gateway, fake_stripe, event, timestamp=timestamp)
    else:
        with pytest.raises(WebhookVerificationError):
            parse(stripe_gateway, fake_stripe, event, timestamp=timestamp)


async def test_several_secrets_during_rotation(stripe_server):
    settings = StripeSettings.model_validate(
        stripe_server.gateway_section(webhook_secret=["whsec_old_one", "whsec_new_one"])
    )
    async with aclosing(StripeGateway(settings)) as gateway:
        event = sample(stripe_server)
        for secrets_ in (["whsec_new_one"], ["whsec_old_one"], ["whsec_unknown", "whsec_new_one"]):
            assert parse(gateway, stripe_server, event, secrets_=secrets_)
        with pytest.raises(WebhookVerificationError):
            parse(gateway, stripe_server, event, secrets_=["whsec_unknown"])


@pytest.mark.parametrize("body", [b"not json", b"\xff\xfe", b"[1, 2]", b'{"object": "event"}'])
def test_a_signed_body_that_is_no_event_is_refused(stripe_gateway, fake_stripe, body):
    headers = {"Stripe-Signature": fake_stripe.sign(body)}

    with pytest.raises(WebhookVerificationError):
        stripe_gateway.parse_webhook(headers, body)
