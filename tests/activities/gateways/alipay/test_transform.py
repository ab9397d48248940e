"""AliPay's pure transformers: `biz_content` from our contracts, answers to our results, yuan <->
minor units. No HTTP: the inputs are plain data."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from activities.gateways.alipay.fake import FakeAlipay
from activities.gateways.alipay.settings import AlipaySettings
from activities.gateways.alipay.transform import (
    minor_of,
    refund_query_result,
    refund_request,
    trade_request,
    trade_result,
    yuan,
)
from activities.gateways.base import GatewayInvalidRequest, WebhookVerificationError
from tests.activities.gateways.helpers import ALIPAY
from workflows.domain import RefundStatus
from workflows.gateway_io import AuthorizeCall, GatewayEventKind, GatewayPaymentStatus
from workflows.money import Amount


@pytest.fixture(scope="module")
def settings() -> AlipaySettings:
    return FakeAlipay().settings(return_url="https://shop.example/paid")


PAY = "pay_0123456789"


def authorize(flow: str, **changes: Any) -> AuthorizeCall:
    return ALIPAY.authorize(PAY, flow, minor=6660, **({"expires_at": None} | changes))


def test_a_trade_carries_our_id_the_yuan_amount_and_the_deadline_in_beijing_time(
    settings: AlipaySettings,
) -> None:
    call = authorize("page", expires_at=datetime(2026, 11, 27, 15, 35, 12, tzinfo=UTC))
    assert trade_request(call, "page", settings) == {
        "out_trade_no": "pay_0123456789",
        "total_amount": "66.60",
        "subject": "Order order_pay_0123456789",
        "product_code": "FAST_INSTANT_TRADE_PAY",
        "time_expire": "2026-11-27 23:35:12",
    }


def test_wap_sends_cancel_back_to_the_shop(settings: AlipaySettings) -> None:
    assert trade_request(authorize("wap"), "wap", settings)["quit_url"] == "https://shop.example/paid"
    call = authorize("wap", return_url="https://shop.example/mine")
    assert trade_request(call, "wap", settings)["quit_url"] == "https://shop.example/mine"
    assert "quit_url" not in trade_request(authorize("precreate"), "precreate", settings)


def test_amounts_are_yuan_of_the_configured_currency_only() -> None:
    assert yuan(Amount(minor=1, currency="CNY"), "CNY") == "0.01"
    assert minor_of("66.60", "CNY") == 6660
    assert minor_of("", "CNY") is None
    with pytest.raises(GatewayInvalidRequest, match="configured for CNY, not USD"):
        yuan(Amount(minor=100, currency="USD"), "CNY")


def test_a_refund_is_its_own_request_number_on_the_trade(settings: AlipaySettings) -> None:
    call = ALIPAY.refund(PAY, "rf_1", 1000, reason="late")
    assert refund_request(call, settings) == {
        "out_trade_no": "pay_0123456789",
        "refund_amount": "10.00",
        "out_request_no": "rf_1",
        "refund_reason": "late",
    }


def test_trade_statuses_map_to_ours() -> None:
    paid = trade_result({"trade_status": "TRADE_SUCCESS", "trade_no": "2026", "total_amount": "66.60"}, "CNY")
    assert (paid.status, paid.provider_payment_id, paid.captured_minor) == (
        GatewayPaymentStatus.SUCCEEDED,
        "2026",
        6660,
    )
    # Closed after a payment: paid, then fully refunded.
    refunded = trade_result({"trade_status": "TRADE_CLOSED", "send_pay_date": "2026-11-27 23:35:12"}, "CNY")
    assert refunded.status is GatewayPaymentStatus.SUCCEEDED
    assert trade_result({"trade_status": "TRADE_CLOSED"}, "CNY").status is GatewayPaymentStatus.CANCELLED
    assert (
        trade_result({"trade_status": "WAIT_BUYER_PAY"}, "CNY").status is GatewayPaymentStatus.REQUIRES_ACTION
    )
    assert trade_result({"trade_status": "NEW"}, "CNY").status is GatewayPaymentStatus.PROCESSING


def test_only_a_refund_query_saying_success_is_a_refund() -> None:
    success = {"refund_status": "REFUND_SUCCESS"}
    assert refund_query_result("rf_1", success, window_passed=False).status is RefundStatus.SUCCEEDED
    # No status: "not received, or failed", and early queries miss successes (issue #17 item 5).
    assert refund_query_result("rf_1", {}, window_passed=False).status is RefundStatus.PENDING
    missing = refund_query_result("rf_1", {}, window_passed=True)
    assert missing.status is RefundStatus.FAILED and missing.failure is not None
    assert missing.failure.code == "refund_not_found"
