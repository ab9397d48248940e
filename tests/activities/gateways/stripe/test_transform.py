"""Stripe's pure transformers: PaymentIntent / Refund parameters from our contracts, PaymentIntents,
card errors and refunds to our results. No HTTP, no SDK: the inputs are plain data."""

from __future__ import annotations

from typing import Any

import pytest

from activities.gateways.base import GatewayInvalidRequest
from activities.gateways.stripe.settings import StripeSettings
from activities.gateways.stripe.transform import (
    METADATA_PAYMENT_ID,
    METADATA_REFUND_ID,
    METADATA_REFUND_REASON,
    cancel_params,
    declined_result,
    intent_params,
    intent_result,
    refund_params,
    refund_result,
)
from tests.activities.gateways.helpers import STRIPE
from workflows.domain import CardMethod, NextActionType, RefundStatus, WalletMethod
from workflows.gateway_io import AuthorizeCall, GatewayEventKind, GatewayPaymentStatus, RefundCall
from workflows.money import Amount

SETTINGS = StripeSettings(
    secret_key="sk_test_" + "x" * 24,
    webhook_secret="whsec_x",
    currencies=["USD", "JPY", "KWD"],
    statement_descriptor_suffix="ORDER",
)


def authorize(**changes: Any) -> AuthorizeCall:
    return STRIPE.authorize("pay_1", minor=2500, **changes)


def test_a_payment_is_one_confirmed_intent_carrying_our_ids() -> None:
    params = intent_params(authorize(capture=False, request_three_ds=True, customer_id="cus_9"), SETTINGS)
    assert params == {
        "amount": 2500,
        "currency": "usd",
        "confirm": True,
        "capture_method": "manual",
        "payment_method_types": ["card"],
        "payment_method_options": {"card": {"request_three_d_secure": "any"}},
        "metadata": {METADATA_PAYMENT_ID: "pay_1", "durapay_order_id": "order_pay_1"},
        "payment_method": "pm_card_visa",
        "customer": "cus_9",
        "statement_descriptor_suffix": "ORDER",
    }


def test_card_tokens_go_as_payment_method_data_and_merchant_customer_ids_stay_ours() -> None:
    params = intent_params(authorize(method=CardMethod(token="tok_visa"), customer_id="c-7"), SETTINGS)
    assert params["payment_method_data"] == {"type": "card", "card": {"token": "tok_visa"}}
    assert "payment_method" not in params and "customer" not in params


def test_what_stripe_cannot_take_is_refused_before_sending() -> None:
    with pytest.raises(GatewayInvalidRequest, match="cards only"):
        intent_params(authorize(method=WalletMethod(wallet="alipay")), SETTINGS)
    with pytest.raises(GatewayInvalidRequest, match="not configured for EUR"):
        intent_params(authorize(amount=Amount(minor=100, currency="EUR")), SETTINGS)
    with pytest.raises(GatewayInvalidRequest, match="square brackets"):
        intent_params(authorize(metadata={"a[b]": "c"}), SETTINGS)
    with pytest.raises(GatewayInvalidRequest, match="must end in 0"):
        intent_params(authorize(amount=Amount(minor=1234, currency="KWD")), SETTINGS)


def test_refund_and_cancel_reasons_outside_stripes_enum_stay_ours() -> None:
    call = STRIPE.refund("pay_1", "rf_1", 500, reason="customer changed their mind")
    assert refund_params(call, "pi_1", SETTINGS) == {
        "payment_intent": "pi_1",
        "amount": 500,
        "metadata": {
            METADATA_REFUND_ID: "rf_1",
            METADATA_PAYMENT_ID: "pay_1",
            METADATA_REFUND_REASON: "customer changed their mind",
        },
    }
    assert (
        refund_params(call.model_copy(update={"reason": "duplicate"}), "pi_1", SETTINGS)["reason"]
        == "duplicate"
    )
    assert cancel_params("fraudulent") == {"cancellation_reason": "fraudulent"}
    assert cancel_params("because") == {}


def test_intents_map_to_our_statuses() -> None:
    paid = intent_result(
        {"id": "pi_1", "status": "succeeded", "currency": "usd", "amount": 2500, "amount_received": 2500},
        None,
    )
    assert (paid.status, paid.provider_payment_id, paid.captured_minor) == (
        GatewayPaymentStatus.SUCCEEDED,
        "pi_1",
        2500,
    )
    held = intent_result(
        {"id": "pi_1", "status": "requires_capture", "currency": "jpy", "amount_capturable": 500}, None
    )
    assert (held.status, held.authorized_minor) == (GatewayPaymentStatus.AUTHORIZED, 500)
    failed = intent_result(
        {
            "id": "pi_1",
            "status": "requires_payment_method",
            "currency": "usd",
            "last_payment_error": {
                "type": "card_error",
                "code": "card_declined",
                "decline_code": "insufficient_funds",
            },
        },
        None,
    )
    assert failed.status is GatewayPaymentStatus.DECLINED and failed.failure is not None
    assert (failed.failure.code, failed.failure.decline_code) == ("card_declined", "insufficient_funds")


def test_a_challenge_is_a_redirect_or_a_stripe_js_action_with_the_publishable_key() -> None:
    redirect = intent_result(
        {
            "id": "pi_1",
            "status": "requires_action",
            "currency": "usd",
            "next_action": {
                "type": "redirect_to_url",
                "redirect_to_url": {"url": "https://3ds", "return_url": "https://shop"},
            },
        },
        "pk_test_1",
    )
    assert redirect.next_action is not None
    assert (redirect.next_action.type, redirect.next_action.url) == (
        NextActionType.REDIRECT_TO_URL,
        "https://3ds",
    )
    sdk = intent_result(
        {
            "id": "pi_1",
            "status": "requires_action",
            "currency": "usd",
            "client_secret": "pi_1_secret_x",
            "next_action": {"type": "use_stripe_sdk"},
        },
        "pk_test_1",
    )
    assert sdk.next_action is not None and sdk.next_action.type is NextActionType.USE_SDK
    assert sdk.next_action.data == {
        "stripe_action": "use_stripe_sdk",
        "payment_intent": "pi_1",
        "client_secret": "pi_1_secret_x",
        "publishable_key": "pk_test_1",
    }


def test_a_card_error_without_an_intent_is_a_decline() -> None:
    result = declined_result({"code": "card_declined", "decline_code": "stolen_card", "message": "No."}, None)
    assert result.status is GatewayPaymentStatus.DECLINED and result.failure is not None
    assert (result.failure.code, result.failure.decline_code) == ("card_declined", "stolen_card")
    assert result.provider_response == {
        "status": "card_error",
        "code": "card_declined",
        "decline_code": "stolen_card",
    }


def test_refunds_map_to_our_refund_results() -> None:
    assert refund_result("rf_1", {"id": "re_1", "status": "succeeded"}).status is RefundStatus.SUCCEEDED
    assert refund_result("rf_1", {"id": "re_1", "status": "pending"}).status is RefundStatus.PENDING
    failed = refund_result(
        "rf_1", {"id": "re_1", "status": "failed", "failure_reason": "expired_or_canceled_card"}
    )
    assert failed.status is RefundStatus.FAILED and failed.failure is not None
    assert "expired_or_canceled_card" in failed.failure.message
