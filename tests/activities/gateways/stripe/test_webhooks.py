"""Stripe's webhooks without HTTP: `Stripe-Signature` verified (any endpoint secret, a timestamp
bounded both ways), and events mapped to the workflow's."""

from __future__ import annotations

import json
import time

import pytest

from activities.gateways.base import WebhookVerificationError
from activities.gateways.stripe.fake import FakeStripe
from activities.gateways.stripe.settings import StripeSettings
from activities.gateways.stripe.transform import METADATA_PAYMENT_ID, METADATA_REFUND_ID
from activities.gateways.stripe.webhooks import events_of, verified_event
from workflows.gateway_io import GatewayEventKind
from workflows.money import Amount

FAKE = FakeStripe(webhook_secrets=["whsec_old", "whsec_new"])
SETTINGS = StripeSettings(secret_key="sk_test_" + "x" * 24, webhook_secret=["whsec_new"])
BODY = json.dumps(
    {"id": "evt_1", "object": "event", "type": "customer.created", "data": {"object": {}}}
).encode()


def test_an_event_signed_with_a_current_secret_is_accepted() -> None:
    assert verified_event(FAKE.sign(BODY), BODY, SETTINGS)["id"] == "evt_1"


@pytest.mark.parametrize(
    ("signature", "reason"),
    [
        (None, "missing"),
        (FAKE.sign(BODY, secrets_=["whsec_old"]), "does not match"),
        (FAKE.sign(BODY, timestamp=int(time.time()) - 3600), "too old"),
        (FAKE.sign(BODY, timestamp=int(time.time()) + 3600), "in the future"),
    ],
)
def test_anything_else_is_refused(signature: str | None, reason: str) -> None:
    with pytest.raises(WebhookVerificationError, match=reason):
        verified_event(signature, BODY, SETTINGS)


def test_a_tampered_body_or_a_non_event_is_refused() -> None:
    with pytest.raises(WebhookVerificationError, match="does not match"):
        verified_event(FAKE.sign(BODY), BODY.replace(b"evt_1", b"evt_2"), SETTINGS)
    other = b'{"hello": "world"}'
    with pytest.raises(WebhookVerificationError, match="not an event"):
        verified_event(FAKE.sign(other), other, SETTINGS)


def test_events_map_to_ours() -> None:
    intent = {
        "id": "pi_1",
        "object": "payment_intent",
        "amount_received": 2500,
        "currency": "usd",
        "metadata": {METADATA_PAYMENT_ID: "pay_1"},
    }
    [paid] = events_of(
        {
            "id": "evt_1",
            "object": "event",
            "type": "payment_intent.succeeded",
            "created": 0,
            "data": {"object": intent},
        },
        "stripe",
    )
    assert (paid.kind, paid.payment_id, paid.amount, paid.gateway) == (
        GatewayEventKind.PAYMENT_SUCCEEDED,
        "pay_1",
        Amount(minor=2500, currency="USD"),
        "stripe",
    )
    refunds = {
        "data": [
            {
                "id": "re_1",
                "status": "succeeded",
                "amount": 100,
                "currency": "usd",
                "metadata": {METADATA_REFUND_ID: "rf_1"},
            },
            {
                "id": "re_2",
                "status": "failed",
                "amount": 200,
                "currency": "usd",
                "metadata": {METADATA_REFUND_ID: "rf_2"},
            },
        ]
    }
    events = events_of(
        {
            "id": "evt_2",
            "object": "event",
            "type": "charge.refunded",
            "data": {"object": {"refunds": refunds}},
        },
        "stripe",
    )
    assert [(e.event_id, e.kind, e.refund_id) for e in events] == [
        ("evt_2:re_1", GatewayEventKind.REFUND_SUCCEEDED, "rf_1"),
        ("evt_2:re_2", GatewayEventKind.REFUND_FAILED, "rf_2"),
    ]
    [other] = events_of(
        {"id": "evt_3", "object": "event", "type": "customer.created", "data": {"object": {}}}, "stripe"
    )
    assert other.kind is GatewayEventKind.UNKNOWN
