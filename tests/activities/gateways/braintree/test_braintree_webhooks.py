"""Braintree notifications: the form decoded once, verified by the SDK, mapped to the workflow's
events; tested without HTTP. The fake's signatures are checked against the SDK's own signer."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from urllib.parse import urlencode

import braintree
import pytest

from activities.gateways.base import WebhookVerificationError
from activities.gateways.braintree.adapter import BraintreeGateway
from activities.gateways.braintree.fake import FakeBraintree, FakeTransaction
from activities.gateways.braintree.webhooks import form_fields
from workflows.gateway_io import GatewayEventKind
from workflows.money import Amount

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def fake() -> FakeBraintree:
    fake = FakeBraintree()
    fake.base_url = "http://127.0.0.1:9"  # never contacted: verification is local
    return fake


@pytest.fixture
def gateway(fake: FakeBraintree) -> BraintreeGateway:
    return BraintreeGateway(fake.settings())


def sale(fake: FakeBraintree, status: str = "settled", **fields) -> FakeTransaction:
    txn = FakeTransaction(
        id="txn1",
        type="sale",
        status=status,
        amount=Decimal("12.34"),
        currency="USD",
        merchant_account_id="durapay_usd",
        order_id="pay_abc",
        card={"last_4": "1111"},
        created_at=datetime(2026, 12, 6, 1, 2, 3, tzinfo=UTC),
        **fields,
    )
    fake.transactions[txn.id] = txn
    return txn


def test_the_sdk_accepts_what_the_fake_signs_and_the_other_way_round(fake, gateway) -> None:
    sdk_signed = gateway.sdk.webhook_testing.sample_notification("check", "")
    [check] = gateway.parse_webhook({}, urlencode(sdk_signed).encode())
    assert (check.kind, check.provider_type) == (GatewayEventKind.UNKNOWN, "check")
    _, body = fake.notification("check", {"check": True})
    signature, payload = form_fields(body)
    assert gateway.sdk.webhook_notification.parse(signature, payload).kind == "check"


def test_transaction_settled_is_the_payment_succeeding(fake, gateway) -> None:
    txn = sale(fake)
    [event] = gateway.parse_webhook(
        {}, fake.notification("transaction_settled", {"transaction": txn.to_xml()})[1]
    )
    assert (event.kind, event.payment_id, event.provider_payment_id) == (
        GatewayEventKind.PAYMENT_SUCCEEDED,
        "pay_abc",
        "txn1",
    )
    assert event.amount == Amount(minor=1234, currency="USD")
    [again] = gateway.parse_webhook(
        {},
        fake.notification("transaction_settled", {"transaction": txn.to_xml()}, timestamp=event.occurred_at)[
            1
        ],
    )
    assert again.event_id == event.event_id  # a resent notification: the same event


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("transaction_settlement_declined", GatewayEventKind.PAYMENT_FAILED),
        ("transaction_disbursed", GatewayEventKind.UNKNOWN),
    ],
)
def test_other_transaction_kinds(fake, gateway, kind, expected) -> None:
    txn = sale(fake, **({"status": "settlement_declined"} if kind.endswith("declined") else {}))
    [event] = gateway.parse_webhook({}, fake.notification(kind, {"transaction": txn.to_xml()})[1])
    assert (event.kind, event.payment_id, event.provider_type) == (expected, "pay_abc", kind)
    if expected is GatewayEventKind.PAYMENT_FAILED:
        assert event.failure is not None and event.failure.code == "settlement_declined"


def test_refund_failed_names_our_refund(fake, gateway) -> None:
    refund = sale(fake, refunded_transaction_id="txn0")
    refund.type, refund.order_id = "credit", "pay_abc/refund/rf_9"
    [event] = gateway.parse_webhook({}, fake.refund_failed(refund)[1])
    assert (
        event.kind,
        event.payment_id,
        event.refund_id,
        event.provider_refund_id,
        event.provider_payment_id,
    ) == (
        GatewayEventKind.REFUND_FAILED,
        "pay_abc",
        "rf_9",
        "txn1",
        "txn0",
    )


@pytest.mark.parametrize(
    ("kind", "expected", "status"),
    [
        ("dispute_opened", GatewayEventKind.DISPUTE_OPENED, "needs_response"),
        ("dispute_won", GatewayEventKind.DISPUTE_CLOSED, "won"),
        ("dispute_lost", GatewayEventKind.DISPUTE_CLOSED, "lost"),
    ],
)
def test_disputes(fake, gateway, kind, expected, status) -> None:
    [event] = gateway.parse_webhook({}, fake.dispute(kind, sale(fake), dispute_id="dp1")[1])
    assert (
        event.kind,
        event.dispute_id,
        event.dispute_status,
        event.payment_id,
        event.provider_payment_id,
    ) == (
        expected,
        "dp1",
        status,
        "pay_abc",
        "txn1",
    )
    assert event.amount == Amount(minor=1234, currency="USD")


def forged(fake: FakeBraintree, **keys: str) -> bytes:
    return FakeBraintree(**keys).notification("transaction_settled", {"transaction": sale(fake).to_xml()})[1]


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"bt_signature=a|b",
        b"bt_payload=QQ%3D%3D",
        b"bt_signature=a&bt_signature=b&bt_payload=QQ%3D%3D",
        "bt_signature=x&bt_payload=é".encode(),
    ],
)
def test_malformed_forms_are_refused(gateway, body) -> None:
    with pytest.raises(WebhookVerificationError):
        gateway.parse_webhook({}, body)


def test_forged_tampered_and_twice_decoded_notifications_are_refused(fake, gateway) -> None:
    with pytest.raises(WebhookVerificationError):  # another private key
        gateway.parse_webhook({}, forged(fake, private_key="someone-elses-private-key"))
    with pytest.raises(WebhookVerificationError):  # another public key: no matching pair
        gateway.parse_webhook({}, forged(fake, public_key="someone_else"))
    body = fake.notification("transaction_settled", {"transaction": sale(fake).to_xml()})[1]
    signature, payload = form_fields(body)
    tampered = payload.replace(payload[10], "A" if payload[10] != "A" else "B", 1)
    with pytest.raises(WebhookVerificationError):
        gateway.parse_webhook({}, urlencode({"bt_signature": signature, "bt_payload": tampered}).encode())
    # A receiver that decodes twice turns the base64 '+' into a space: refused, not misread.
    if "+" in payload:
        with pytest.raises(WebhookVerificationError):
            gateway.parse_webhook({}, f"bt_signature={signature}&bt_payload={payload}".encode())


def test_the_endpoint_challenge_is_answered_with_our_key_pair(fake, gateway) -> None:
    answer = gateway.answer_challenge("20f9f8ed05f77439fe955c977e4c8a53")
    public_key, digest = answer.split("|")
    assert public_key == fake.public_key and len(digest) == 40
    with pytest.raises(braintree.exceptions.InvalidChallengeError):
        gateway.answer_challenge("not hex!")
