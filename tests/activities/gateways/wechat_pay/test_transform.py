"""WeChat Pay's pure transformers: request bodies from our contracts, answers and notifications to
our results. No HTTP: the inputs are plain data."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from activities.gateways.base import GatewayInvalidRequest, GatewayOutcomeUnknown, required_field
from activities.gateways.wechat_pay.fake import FakeWechatPay
from activities.gateways.wechat_pay.settings import WechatPaySettings
from activities.gateways.wechat_pay.transform import (
    notification_event,
    order_request,
    refund_failed,
    refund_request,
    refund_result,
    trade_result,
)
from tests.activities.gateways.helpers import WECHAT_PAY
from workflows.domain import RefundStatus, WalletMethod
from workflows.gateway_io import (
    AuthorizeCall,
    GatewayEventKind,
    GatewayPaymentStatus,
    RefundCall,
)
from workflows.money import Amount


@pytest.fixture(scope="module")
def settings() -> WechatPaySettings:
    return FakeWechatPay().settings(notify_url="https://pay.example/webhooks/wechat_pay")


PAY = "pay_0123456789"


def authorize(flow: str = "native", **changes: Any) -> AuthorizeCall:
    return WECHAT_PAY.authorize(PAY, flow, **({"expires_at": None} | changes))


def test_an_order_carries_our_ids_the_minor_amount_and_the_deadline_in_beijing_time(
    settings: WechatPaySettings,
) -> None:
    call = authorize(
        expires_at=datetime(2026, 11, 27, 15, 35, 12, 345, tzinfo=UTC), customer_ip="203.0.113.9"
    )
    assert order_request(call, "native", settings) == {
        "appid": settings.appid,
        "mchid": settings.mchid,
        "description": "Order order_pay_0123456789",
        "out_trade_no": "pay_0123456789",
        "attach": "order_pay_0123456789",
        "notify_url": "https://pay.example/webhooks/wechat_pay",
        "amount": {"total": 8888, "currency": "CNY"},
        "time_expire": "2026-11-27T23:35:12+08:00",
        "scene_info": {"payer_client_ip": "203.0.113.9"},
    }


def test_jsapi_needs_the_openid_and_h5_the_customer_ip(settings: WechatPaySettings) -> None:
    with pytest.raises(GatewayInvalidRequest, match="openid"):
        order_request(authorize("jsapi"), "jsapi", settings)
    method = WalletMethod(wallet="wechat_pay", flow="jsapi", payer_id="o-openid")
    assert order_request(authorize("jsapi", method=method), "jsapi", settings)["payer"] == {
        "openid": "o-openid"
    }
    with pytest.raises(GatewayInvalidRequest, match="IP address"):
        order_request(authorize("h5"), "h5", settings)
    body = order_request(authorize("h5", customer_ip="203.0.113.9"), "h5", settings)
    assert body["scene_info"] == {"payer_client_ip": "203.0.113.9", "h5_info": {"type": "Wap"}}


def test_a_long_description_is_cut_to_wechats_limit(settings: WechatPaySettings) -> None:
    assert len(order_request(authorize(description="x" * 300), "native", settings)["description"]) == 127


def test_a_refund_names_the_order_total_and_a_merchant_unique_refund_number(
    settings: WechatPaySettings,
) -> None:
    call = WECHAT_PAY.refund(PAY, "rf_1", 1000, reason="r" * 100)
    body = refund_request(call, 8888, settings)
    assert body["out_refund_no"] == "pay_0123456789-rf_1"
    assert body["amount"] == {"refund": 1000, "total": 8888, "currency": "CNY"}
    assert len(body["reason"]) == 80


def test_trade_states_map_to_our_statuses() -> None:
    paid = trade_result(
        {
            "trade_state": "SUCCESS",
            "transaction_id": "4200",
            "out_trade_no": "pay_1",
            "amount": {"total": 8888},
        }
    )
    assert (paid.status, paid.provider_payment_id, paid.captured_minor) == (
        GatewayPaymentStatus.SUCCEEDED,
        "4200",
        8888,
    )
    failed = trade_result({"trade_state": "PAYERROR", "trade_state_desc": "bank refused"})
    assert failed.status is GatewayPaymentStatus.DECLINED and failed.failure is not None
    assert (failed.failure.decline_code, failed.failure.message) == ("PAYERROR", "bank refused")
    assert trade_result({"trade_state": "NOTPAY"}).status is GatewayPaymentStatus.REQUIRES_ACTION
    assert trade_result({"trade_state": "CLOSED"}).status is GatewayPaymentStatus.CANCELLED
    # A state WeChat adds later is not taken for money moved.
    assert trade_result({"trade_state": "NEWSTATE"}).status is GatewayPaymentStatus.PROCESSING


def test_refund_answers_map_to_our_refund_results() -> None:
    done = refund_result("rf_1", {"status": "SUCCESS", "refund_id": "5030"})
    assert (done.status, done.provider_refund_id) == (RefundStatus.SUCCEEDED, "5030")
    assert refund_result("rf_1", {"status": "PROCESSING"}).status is RefundStatus.PENDING
    abnormal = refund_result("rf_1", {"status": "ABNORMAL"})
    assert abnormal.status is RefundStatus.FAILED and abnormal.failure is not None
    assert abnormal.failure.code == "refund_abnormal"
    refused = refund_failed("rf_1", "NOT_ENOUGH", "balance too low")
    assert refused.failure is not None and refused.failure.decline_code == "NOT_ENOUGH"


def test_an_answer_without_what_the_flow_needs_is_an_unknown_outcome() -> None:
    assert required_field({"code_url": "weixin://wxpay/x"}, "code_url", "WeChat Pay") == "weixin://wxpay/x"
    with pytest.raises(GatewayOutcomeUnknown, match="WeChat Pay answered without code_url"):
        required_field({}, "code_url", "WeChat Pay")


def test_notifications_map_to_events() -> None:
    envelope = {"create_time": "2026-11-27T23:35:12+08:00"}
    paid = notification_event(
        "evt-1",
        "TRANSACTION.SUCCESS",
        envelope,
        {
            "out_trade_no": "pay_1",
            "transaction_id": "4200",
            "trade_state": "SUCCESS",
            "amount": {"total": 8888},
        },
        "CNY",
    )
    assert (paid.kind, paid.payment_id, paid.amount) == (
        GatewayEventKind.PAYMENT_SUCCEEDED,
        "pay_1",
        Amount(minor=8888, currency="CNY"),
    )
    assert paid.occurred_at == datetime(2026, 11, 27, 15, 35, 12, tzinfo=UTC)
    refunded = notification_event(
        "evt-2",
        "REFUND.SUCCESS",
        envelope,
        {
            "out_trade_no": "pay_1",
            "out_refund_no": "pay_1-rf_1",
            "refund_id": "5030",
            "amount": {"refund": 100},
        },
        "CNY",
    )
    assert (refunded.kind, refunded.refund_id, refunded.amount) == (
        GatewayEventKind.REFUND_SUCCEEDED,
        "rf_1",
        Amount(minor=100, currency="CNY"),
    )
    closed = notification_event("evt-3", "REFUND.CLOSED", envelope, {"out_trade_no": "pay_1"}, "CNY")
    assert closed.kind is GatewayEventKind.REFUND_FAILED and closed.failure is not None
    assert closed.failure.decline_code == "CLOSED"
    assert notification_event("evt-4", "OTHER", envelope, {}, "CNY").kind is GatewayEventKind.UNKNOWN
