"""PayPal's pure mapping: money objects, order / refund answers, error bodies."""

from __future__ import annotations

from typing import Any

import pytest

from activities.gateways.base import GatewayInvalidRequest, GatewayOutcomeUnknown
from activities.gateways.paypal import transform as tf
from tests.activities.gateways.helpers import GatewayCalls, pid
from workflows.domain import RefundStatus, WalletMethod
from workflows.gateway_io import GatewayPaymentStatus
from workflows.money import Amount


@pytest.mark.parametrize(
    ("amount", "wire"),
    [
        (Amount(minor=4999, currency="USD"), {"currency_code": "USD", "value": "49.99"}),
        (Amount(minor=5000, currency="USD"), {"currency_code": "USD", "value": "50.00"}),
        (Amount(minor=5000, currency="JPY"), {"currency_code": "JPY", "value": "5000"}),
        (Amount(minor=120000, currency="HUF"), {"currency_code": "HUF", "value": "1200"}),
    ],
)
def test_money_is_a_decimal_string_with_paypals_places(amount: Amount, wire: dict[str, str]) -> None:
    assert tf.money(amount) == wire
    assert tf.amount_of(wire) == amount


def test_cents_in_a_currency_paypal_takes_whole_are_refused() -> None:
    with pytest.raises(GatewayInvalidRequest):
        tf.money(Amount(minor=120050, currency="HUF"))  # 1200.50 HUF


def test_an_unreadable_amount_is_an_unknown_outcome() -> None:
    with pytest.raises(GatewayOutcomeUnknown):
        tf.amount_of({"currency_code": "USD", "value": "ten"})


def test_order_body_carries_our_ids_intent_and_return() -> None:
    c = GatewayCalls("paypal", "USD", lambda *_: WalletMethod(wallet="paypal"), 10_000)
    call = c.authorize(
        pid("t1"), capture=False, return_url="https://shop.example/back", description="x" * 300
    )
    body = tf.order_body(call, brand_name="Shop")
    [unit] = body["purchase_units"]
    assert body["intent"] == "AUTHORIZE"
    assert (unit["custom_id"], unit["invoice_id"]) == (pid("t1"), pid("t1"))
    assert unit["amount"] == {"currency_code": "USD", "value": "100.00"} and len(unit["description"]) == 127
    context = body["payment_source"]["paypal"]["experience_context"]
    assert context["return_url"] == "https://shop.example/back" and context["brand_name"] == "Shop"


def order(status: str, **payments: Any) -> dict[str, Any]:
    return {
        "id": "ORDER1",
        "status": status,
        "purchase_units": [{"custom_id": "pay_1", "payments": payments}],
        "links": [{"rel": "payer-action", "href": "https://paypal.example/checkoutnow?token=ORDER1"}],
    }


def money(value: str) -> dict[str, str]:
    return {"currency_code": "USD", "value": value}


def test_an_order_waiting_for_the_payer_asks_for_the_redirect() -> None:
    result = tf.order_result(order("PAYER_ACTION_REQUIRED"))
    assert result.status is GatewayPaymentStatus.REQUIRES_ACTION
    assert (
        result.next_action is not None
        and result.next_action.url == "https://paypal.example/checkoutnow?token=ORDER1"
    )


@pytest.mark.parametrize(
    ("payments", "status", "captured", "authorized"),
    [
        ({"captures": [{"status": "COMPLETED", "amount": money("10.00")}]}, "succeeded", 1000, None),
        ({"captures": [{"status": "REFUNDED", "amount": money("10.00")}]}, "succeeded", 1000, None),
        ({"captures": [{"status": "PENDING", "amount": money("10.00")}]}, "processing", None, None),
        ({"captures": [{"status": "DECLINED", "amount": money("10.00")}]}, "declined", None, None),
        ({"authorizations": [{"status": "CREATED", "amount": money("10.00")}]}, "authorized", None, 1000),
        ({"authorizations": [{"status": "VOIDED", "amount": money("10.00")}]}, "cancelled", None, None),
        ({"authorizations": [{"status": "DENIED", "amount": money("10.00")}]}, "declined", None, None),
        (
            {
                "authorizations": [{"status": "CAPTURED", "amount": money("10.00")}],
                "captures": [{"status": "COMPLETED", "amount": money("6.00")}],
            },
            "succeeded",
            600,
            None,
        ),
    ],
)
def test_a_completed_order_is_what_its_payments_say(
    payments: dict[str, Any], status: str, captured: int | None, authorized: int | None
) -> None:
    result = tf.order_result(order("COMPLETED", **payments))
    assert (result.status.value, result.captured_minor, result.authorized_minor) == (
        status,
        captured,
        authorized,
    )
    assert result.provider_payment_id == "ORDER1"
    if status == "declined":
        assert result.failure is not None and result.failure.code == "payment_declined"


def test_a_completed_order_with_no_payment_is_not_guessed() -> None:
    with pytest.raises(GatewayOutcomeUnknown):
        tf.order_result(order("COMPLETED"))


def test_voided_order_is_cancelled() -> None:
    assert tf.order_result(order("VOIDED")).status is GatewayPaymentStatus.CANCELLED


@pytest.mark.parametrize(
    ("status", "ours"),
    [
        ("COMPLETED", RefundStatus.SUCCEEDED),
        ("PENDING", RefundStatus.PENDING),
        ("FAILED", RefundStatus.FAILED),
    ],
)
def test_refund_status(status: str, ours: RefundStatus) -> None:
    result = tf.refund_result({"id": "R1", "status": status}, "rf_1")
    assert (result.refund_id, result.status, result.provider_refund_id) == ("rf_1", ours, "R1")


def test_error_body() -> None:
    body = {
        "name": "UNPROCESSABLE_ENTITY",
        "message": "m",
        "details": [{"issue": "ORDER_NOT_APPROVED", "description": "d"}],
    }
    assert tf.error_of(body) == ("UNPROCESSABLE_ENTITY", "ORDER_NOT_APPROVED", "d")
    assert tf.error_of("nope") == (None, None, None)


def test_an_order_we_cancelled_stays_cancelled_even_once_approved() -> None:
    marked = order("APPROVED")
    marked["purchase_units"][0]["custom_id"] = tf.cancel_patch("pay_1")[0]["value"]
    assert tf.cancelled_by_us(marked) and tf.payment_id_of(marked) == "pay_1"
    assert tf.order_result(marked).status is GatewayPaymentStatus.CANCELLED
    assert not tf.cancelled_by_us(order("APPROVED"))
