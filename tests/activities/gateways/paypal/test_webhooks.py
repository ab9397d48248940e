"""PayPal's webhook headers, the verification request and the event mapping, without HTTP."""

from __future__ import annotations

import json
import time
import zlib
from typing import Any

import pytest

from activities.gateways.base import WebhookVerificationError
from activities.gateways.paypal.fake import top_level_spans
from activities.gateways.paypal.webhooks import (
    Transmission,
    events_of,
    parse_event,
    signed_message,
    transmission_of,
    verification_request,
    verification_succeeded,
)
from workflows.gateway_io import GatewayEventKind
from workflows.money import Amount


def headers(**changes: str) -> dict[str, str]:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    values = {
        "paypal-transmission-id": "69cd13f0-d67a-11e5-baa3-778b53f4ae55",
        "paypal-transmission-time": now,
        "paypal-transmission-sig": "c2ln",
        "paypal-cert-url": "https://api.paypal.com/v1/notifications/certs/CERT-360caa42",
        "paypal-auth-algo": "SHA256withRSA",
    }
    return {**values, **changes}


def test_headers_read_in_any_case() -> None:
    upper = {k.upper(): v for k, v in headers().items()}
    transmission = transmission_of(upper, window_seconds=600)
    assert (
        transmission.id == "69cd13f0-d67a-11e5-baa3-778b53f4ae55"
        and transmission.auth_algo == "SHA256withRSA"
    )


@pytest.mark.parametrize(
    "bad",
    [
        {"paypal-transmission-sig": ""},
        {"paypal-cert-url": ""},
        {"paypal-auth-algo": "SHA1withRSA"},
        {"paypal-transmission-time": "yesterday"},
        {"paypal-transmission-time": "2020-01-01T00:00:00"},  # no zone
        {"paypal-transmission-time": "2020-01-01T00:00:00Z"},  # stale
    ],
)
def test_missing_foreign_or_stale_headers_are_refused(bad: dict[str, str]) -> None:
    with pytest.raises(WebhookVerificationError):
        transmission_of(headers(**bad), window_seconds=600)


def test_signed_message_uses_the_unsigned_crc32_of_the_raw_body() -> None:
    # A body whose CRC-32 has the top bit set: as a signed 32-bit value it would be negative.
    body = next(b for n in range(100) if zlib.crc32(b := b'{"n":%d}' % n) >= 2**31)
    message = signed_message("t", "2026-01-01T00:00:00Z", "WH-ID", body)
    assert message == f"t|2026-01-01T00:00:00Z|WH-ID|{zlib.crc32(body)}" and "-" not in message.split("|")[3]


def test_verification_request_carries_the_event_bytes_as_received() -> None:
    body = b'{ "id" : "WH-1",  "event_type":"PAYMENT.CAPTURE.COMPLETED", "resource": {"a": 1.10}}'
    transmission = Transmission(id="t", time="now", sig="s", cert_url="https://c", auth_algo="SHA256withRSA")
    request = verification_request(transmission, "WH-ID", body)
    assert top_level_spans(request)["webhook_event"] == body  # not re-serialized
    fields = json.loads(request)
    assert (fields["webhook_id"], fields["transmission_sig"], fields["webhook_event"]["id"]) == (
        "WH-ID",
        "s",
        "WH-1",
    )


def test_only_success_verifies() -> None:
    assert verification_succeeded({"verification_status": "SUCCESS"})
    assert not verification_succeeded({"verification_status": "FAILURE"})
    assert not verification_succeeded(None)


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"id": "WH-1"}'])
def test_a_body_that_is_no_event_is_refused(body: bytes) -> None:
    with pytest.raises(WebhookVerificationError):
        parse_event(body)


def event(event_type: str, resource: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "WH-1",
        "event_type": event_type,
        "create_time": "2026-01-01T00:00:00Z",
        "resource": resource,
    }


CAPTURE = {
    "id": "C1",
    "status": "COMPLETED",
    "amount": {"currency_code": "USD", "value": "49.99"},
    "custom_id": "pay_1",
    "supplementary_data": {"related_ids": {"order_id": "O1"}},
}


@pytest.mark.parametrize(
    ("event_type", "resource", "kind"),
    [
        (
            "CHECKOUT.ORDER.APPROVED",
            {"id": "O1", "purchase_units": [{"custom_id": "pay_1"}]},
            GatewayEventKind.PAYMENT_PROCESSING,
        ),
        ("PAYMENT.CAPTURE.COMPLETED", CAPTURE, GatewayEventKind.PAYMENT_SUCCEEDED),
        ("PAYMENT.CAPTURE.PENDING", CAPTURE, GatewayEventKind.PAYMENT_PROCESSING),
        ("PAYMENT.CAPTURE.DENIED", {**CAPTURE, "status": "DECLINED"}, GatewayEventKind.PAYMENT_FAILED),
        ("PAYMENT.AUTHORIZATION.VOIDED", {**CAPTURE, "status": "VOIDED"}, GatewayEventKind.PAYMENT_CANCELLED),
    ],
)
def test_payment_events(event_type: str, resource: dict[str, Any], kind: GatewayEventKind) -> None:
    [mapped] = events_of(event(event_type, resource), "paypal")
    assert (mapped.kind, mapped.payment_id, mapped.provider_payment_id) == (kind, "pay_1", "O1")
    assert mapped.event_id == "WH-1" and mapped.provider_type == event_type
    if kind is GatewayEventKind.PAYMENT_SUCCEEDED:
        assert mapped.amount == Amount(minor=4999, currency="USD")
    if kind is GatewayEventKind.PAYMENT_FAILED:
        assert mapped.failure is not None and mapped.failure.code == "payment_declined"


def test_refund_and_reversal() -> None:
    refund = {
        "id": "R1",
        "status": "COMPLETED",
        "amount": {"currency_code": "USD", "value": "5.00"},
        "custom_id": "rf_1",
        "invoice_id": "pay_1",
    }
    [ours] = events_of(event("PAYMENT.CAPTURE.REFUNDED", refund), "paypal")
    [reversal] = events_of(event("PAYMENT.CAPTURE.REVERSED", refund), "paypal")
    assert (ours.kind, ours.refund_id, ours.provider_refund_id, ours.payment_id) == (
        GatewayEventKind.REFUND_SUCCEEDED,
        "rf_1",
        "R1",
        "pay_1",
    )
    assert (reversal.kind, reversal.refund_id) == (GatewayEventKind.REFUND_SUCCEEDED, None)  # made at PayPal


def test_disputes() -> None:
    dispute = {
        "dispute_id": "PP-D-1",
        "reason": "UNAUTHORISED",
        "status": "OPEN",
        "dispute_amount": {"currency_code": "USD", "value": "49.99"},
        "disputed_transactions": [{"seller_transaction_id": "C1", "invoice_number": "pay_1"}],
    }
    [opened] = events_of(event("CUSTOMER.DISPUTE.CREATED", dispute), "paypal")
    resolved = {**dispute, "status": "RESOLVED", "dispute_outcome": {"outcome_code": "RESOLVED_BUYER_FAVOUR"}}
    [closed] = events_of(event("CUSTOMER.DISPUTE.RESOLVED", resolved), "paypal")
    assert (opened.kind, opened.dispute_status, opened.payment_id) == (
        GatewayEventKind.DISPUTE_OPENED,
        "needs_response",
        "pay_1",
    )
    assert (closed.kind, closed.dispute_status) == (GatewayEventKind.DISPUTE_CLOSED, "lost")


def test_an_event_we_do_not_act_on_is_unknown() -> None:
    [mapped] = events_of(event("BILLING.SUBSCRIPTION.CREATED", {}), "paypal")
    assert mapped.kind is GatewayEventKind.UNKNOWN
