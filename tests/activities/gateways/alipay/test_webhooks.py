"""AliPay's notifications without HTTP: verified (signature, app, seller, required ids), decoded
once, and mapped to the workflow's events."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from activities.gateways.alipay.fake import FakeAlipay
from activities.gateways.alipay.settings import AlipaySettings
from activities.gateways.alipay.webhooks import notification_event, parse_notification, verified_notification
from activities.gateways.base import WebhookVerificationError
from workflows.gateway_io import GatewayEventKind
from workflows.money import Amount

FAKE = FakeAlipay()
PARAMS = {"notify_id": "n1", "app_id": FAKE.app_id, "out_trade_no": "pay_1", "trade_status": "TRADE_SUCCESS"}


@pytest.fixture(scope="module")
def settings() -> AlipaySettings:
    return FAKE.settings(seller_id=FAKE.seller_id)


def test_a_signed_notification_for_this_app_and_seller_is_accepted(settings: AlipaySettings) -> None:
    _, body = FAKE.notification({**PARAMS, "seller_id": FAKE.seller_id})
    params = verified_notification(body, settings)
    assert (params["notify_id"], params["out_trade_no"]) == ("n1", "pay_1")


@pytest.mark.parametrize(
    ("params", "sign_with", "reason"),
    [
        ({**PARAMS, "seller_id": FAKE.seller_id}, FAKE.app_private_key, "does not verify"),
        ({**PARAMS, "seller_id": "2088000000000000"}, None, "another seller"),
        ({**PARAMS, "seller_id": FAKE.seller_id, "app_id": "2021999"}, None, "another app_id"),
        ({**PARAMS, "seller_id": FAKE.seller_id, "notify_id": None}, None, "required"),
    ],
)
def test_anything_else_is_refused(
    settings: AlipaySettings, params: dict, sign_with: str | None, reason: str
) -> None:
    _, body = FAKE.notification(params, sign_with=sign_with)
    with pytest.raises(WebhookVerificationError, match=reason):
        verified_notification(body, settings)


def test_a_tampered_amount_breaks_the_signature(settings: AlipaySettings) -> None:
    _, body = FAKE.notification({**PARAMS, "seller_id": FAKE.seller_id, "total_amount": "1.00"})
    with pytest.raises(WebhookVerificationError, match="does not verify"):
        verified_notification(body.replace(b"total_amount=1.00", b"total_amount=9.00"), settings)


def test_notifications_map_to_events() -> None:
    common = {"notify_id": "n1", "out_trade_no": "pay_1", "trade_no": "2026"}
    paid = notification_event(
        {
            **common,
            "trade_status": "TRADE_SUCCESS",
            "total_amount": "66.60",
            "gmt_payment": "2026-11-27 23:35:12",
        },
        "CNY",
    )
    assert (paid.kind, paid.payment_id, paid.amount) == (
        GatewayEventKind.PAYMENT_SUCCEEDED,
        "pay_1",
        Amount(minor=6660, currency="CNY"),
    )
    assert paid.occurred_at == datetime(2026, 11, 27, 15, 35, 12, tzinfo=UTC)
    refund = notification_event(
        {**common, "trade_status": "TRADE_SUCCESS", "out_biz_no": "rf_1", "refund_fee": "10.00"}, "CNY"
    )
    assert (refund.kind, refund.refund_id, refund.amount) == (GatewayEventKind.REFUND_SUCCEEDED, "rf_1", None)
    assert notification_event({**common, "trade_status": "TRADE_CLOSED"}, "CNY").kind is (
        GatewayEventKind.PAYMENT_CANCELLED
    )
    with pytest.raises(WebhookVerificationError, match="yuan"):
        notification_event({**common, "trade_status": "TRADE_SUCCESS", "total_amount": "6.666"}, "CNY")


def test_a_notification_is_url_decoded_once_and_a_repeated_key_is_refused() -> None:
    assert parse_notification(b"subject=%25E4&out_trade_no=pay_1") == {
        "subject": "%E4",
        "out_trade_no": "pay_1",
    }
    with pytest.raises(WebhookVerificationError, match="repeated"):
        parse_notification(b"a=1&a=2")
