"""Airwallex's webhook verification (x-timestamp in milliseconds + x-signature, HMAC-SHA256 of the
timestamp and the raw body, five minutes either way) and the events mapped to the workflow's,
without HTTP."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest

from activities.gateways.airwallex.settings import AirwallexSettings
from activities.gateways.airwallex.transform import encode
from activities.gateways.airwallex.webhooks import events_of, verified_event
from activities.gateways.base import WebhookVerificationError
from activities.gateways.signing import hmac_sha256_hex
from workflows.gateway_io import GatewayEventKind
from workflows.money import Amount

SECRET = "whsec_test_secret"
SETTINGS = AirwallexSettings(client_id="c", api_key="k", webhook_secret=SECRET)


def event(name: str, obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "evt_1",
        "name": name,
        "account_id": "acct_1",
        "created_at": "2026-01-02T03:04:05+0000",
        "data": {"object": obj},
    }


def signed(body: bytes, *, at: float | None = None, secret: str = SECRET) -> dict[str, str]:
    stamp = str(int((time.time() if at is None else at) * 1000))
    return {"X-Timestamp": stamp, "X-Signature": hmac_sha256_hex(secret, stamp.encode() + body)}


INTENT = {
    "id": "int_1",
    "merchant_order_id": "pay_1",
    "amount": Decimal("49.99"),
    "captured_amount": Decimal("49.99"),
    "currency": "USD",
    "status": "SUCCEEDED",
}
BODY = encode(event("payment_intent.succeeded", INTENT))


def test_a_signed_recent_event_is_accepted_whatever_the_header_case():
    assert verified_event(signed(BODY), BODY, SETTINGS)["id"] == "evt_1"
    lower = {k.lower(): v for k, v in signed(BODY).items()}
    assert verified_event(lower, BODY, SETTINGS)["name"] == "payment_intent.succeeded"


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(signed(BODY, secret="whsec_other"), id="forged"),
        pytest.param({**signed(BODY), "X-Signature": "00" * 32}, id="wrong signature"),
        pytest.param({"X-Timestamp": str(int(time.time() * 1000))}, id="no signature"),
        pytest.param({"X-Signature": "ab"}, id="no timestamp"),
        pytest.param({**signed(BODY), "X-Timestamp": "soon"}, id="timestamp not a number"),
    ],
)
def test_forged_or_incomplete_deliveries_are_refused(headers):
    with pytest.raises(WebhookVerificationError):
        verified_event(headers, BODY, SETTINGS)


def test_a_tampered_body_is_refused():
    with pytest.raises(WebhookVerificationError):
        verified_event(signed(BODY), BODY.replace(b"49.99", b"0.01"), SETTINGS)


def test_the_timestamp_is_signed_too():
    headers = signed(BODY)
    headers["X-Timestamp"] = str(int(headers["X-Timestamp"]) + 1)
    with pytest.raises(WebhookVerificationError):
        verified_event(headers, BODY, SETTINGS)


@pytest.mark.parametrize("offset", [-301, 301])
def test_stale_or_future_deliveries_are_refused(offset):
    with pytest.raises(WebhookVerificationError):
        verified_event(signed(BODY, at=time.time() + offset), BODY, SETTINGS)
    assert verified_event(signed(BODY, at=time.time() + offset * 0.9), BODY, SETTINGS)


def test_a_signed_body_that_is_no_event_is_refused():
    for body in (b"not json", b"[]", b'{"name":"x"}'):
        with pytest.raises(WebhookVerificationError):
            verified_event(signed(body), body, SETTINGS)


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("payment_intent.succeeded", GatewayEventKind.PAYMENT_SUCCEEDED),
        ("payment_intent.requires_capture", GatewayEventKind.PAYMENT_AUTHORIZED),
        ("payment_intent.requires_customer_action", GatewayEventKind.PAYMENT_REQUIRES_ACTION),
        ("payment_intent.cancelled", GatewayEventKind.PAYMENT_CANCELLED),
        ("payment_intent.created", GatewayEventKind.UNKNOWN),
    ],
)
def test_intent_events(name, kind):
    [mapped] = events_of(event(name, INTENT), "airwallex")
    assert (mapped.kind, mapped.payment_id, mapped.provider_payment_id) == (kind, "pay_1", "int_1")
    assert mapped.event_id == "evt_1" and mapped.provider_type == name
    if kind is not GatewayEventKind.UNKNOWN:
        assert mapped.amount == Amount(minor=4999, currency="USD")


@pytest.mark.parametrize("name", ["payment_attempt.failed", "payment_attempt.authorization_failed"])
def test_failed_attempts(name):
    attempt = {
        "id": "att_1",
        "payment_intent_id": "int_1",
        "merchant_order_id": "pay_1",
        "amount": 10,
        "currency": "JPY",
        "status": "FAILED",
        "failure_code": "issuer_declined",
    }
    [mapped] = events_of(event(name, attempt), "airwallex")
    assert mapped.kind is GatewayEventKind.PAYMENT_FAILED
    assert (mapped.provider_payment_id, mapped.amount) == ("int_1", Amount(minor=10, currency="JPY"))
    assert mapped.failure is not None and mapped.failure.decline_code == "issuer_declined"


@pytest.mark.parametrize(
    ("name", "status", "kind"),
    [
        ("refund.settled", "SETTLED", GatewayEventKind.REFUND_SUCCEEDED),
        ("refund.succeeded", "SUCCEEDED", GatewayEventKind.REFUND_SUCCEEDED),
        ("refund.failed", "FAILED", GatewayEventKind.REFUND_FAILED),
        ("refund.received", "RECEIVED", GatewayEventKind.UNKNOWN),
    ],
)
def test_refund_events(name, status, kind):
    refund = {
        "id": "rfd_1",
        "payment_intent_id": "int_1",
        "amount": Decimal("5.00"),
        "currency": "USD",
        "status": status,
        "metadata": {"durapay_refund_id": "ref_1", "durapay_payment_id": "pay_1"},
    }
    [mapped] = events_of(event(name, refund), "airwallex")
    assert (mapped.kind, mapped.refund_id, mapped.provider_refund_id, mapped.payment_id) == (
        kind,
        "ref_1",
        "rfd_1",
        "pay_1",
    )
    assert (mapped.failure is not None) == (kind is GatewayEventKind.REFUND_FAILED)


def test_dispute_events():
    dispute = {
        "id": "dsp_1",
        "payment_intent_id": "int_1",
        "amount": 20,
        "currency": "USD",
        "status": "REQUIRES_RESPONSE",
        "reason": {"type": "fraudulent"},
    }
    [opened] = events_of(event("payment_dispute.requires_response", dispute), "airwallex")
    [closed] = events_of(event("payment_dispute.won", {**dispute, "status": "WON"}), "airwallex")
    assert (opened.kind, opened.dispute_id, opened.dispute_reason) == (
        GatewayEventKind.DISPUTE_OPENED,
        "dsp_1",
        "fraudulent",
    )
    assert (closed.kind, closed.dispute_status) == (GatewayEventKind.DISPUTE_CLOSED, "won")


def test_an_amount_with_more_places_than_its_currency_is_not_read():
    [mapped] = events_of(
        event("payment_intent.succeeded", {**INTENT, "captured_amount": Decimal("1.234")}), "airwallex"
    )
    assert mapped.amount is None
