"""Request models and raw-card-data detection (api/schemas.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from pydantic import ValidationError

from api.schemas import (
    CapturePayment,
    CreatePayment,
    PaymentOut,
    contains_card_number,
    find_card_data,
    luhn_valid,
)
from tests.api.fakes import a_view
from workflows.domain import (
    DisputeView,
    Failure,
    FraudDecision,
    FraudResult,
    PaymentStatus,
    RefundStatus,
    RefundView,
)
from workflows.money import Amount

VALID = {
    "order_id": "o-1",
    "amount": "49.99",
    "currency": "usd",
    "payment_method": {"type": "card", "token": "tok_visa"},
}


@pytest.mark.parametrize(
    "text",
    [
        "4242424242424242",
        "4242 4242 4242 4242",
        "4242-4242-4242-4242",
        "card: 4000056655665556 thanks",
        "ref 12 4242 4242 4242 4242",  # a number typed after other digits
        "378282246310005",  # 15-digit Amex
        "6011111111111117",
        "4000 0000 0000 0000 006",  # 19 digits
    ],
)
def test_card_numbers_are_found(text):
    assert contains_card_number(text)


@pytest.mark.parametrize(
    "text",
    [
        "4242424242424241",  # fails Luhn
        "order 12345",
        "0000000000000000",  # passes Luhn, but no card number starts with 0
        "4200001234202311271234567890",  # a 28-digit provider id is never cut into a card number
        "2026-11-27 12:00",
        "4242  4242 4242 4242",  # two separators: not one number
    ],
)
def test_other_digit_runs_are_not_card_numbers(text):
    assert not contains_card_number(text)


def test_luhn():
    assert luhn_valid("79927398713")
    assert not luhn_valid("79927398710")


def test_find_card_data_points_at_fields_without_repeating_numbers():
    document = {
        "order_id": "o-1",
        "metadata": {"note": "pan 4111 1111 1111 1111", "4111111111111111": "as a key"},
        "payment_method": {"type": "card", "cardNumber": "x", "CVC": "123"},
        "items": [{"sku": 1}, 5555555555554444],
        "number_field_ok": "12",
    }
    pointers = sorted(find_card_data(document))
    assert pointers == sorted(
        ["/metadata/note", "/metadata/*", "/payment_method/cardNumber", "/payment_method/CVC", "/items/1"]
    )


def test_create_payment_normalizes_and_converts():
    body = CreatePayment.model_validate(VALID)
    assert body.currency == "USD"
    assert body.amount == Decimal("49.99")
    assert body.money() == Amount(minor=4999, currency="USD")


@pytest.mark.parametrize(
    ("amount", "currency", "message"),
    [
        (49.99, "USD", "JSON numbers are refused"),
        (50, "USD", "JSON numbers are refused"),
        ("49.999", "USD", "more decimal places than USD allows"),
        ("100.5", "JPY", "more decimal places than JPY allows"),
        ("1e3", "USD", "plain decimal string"),
        ("-5", "USD", "plain decimal string"),
        ("0", "USD", "greater than zero"),
    ],
)
def test_create_payment_refuses_bad_amounts(amount, currency, message):
    with pytest.raises(ValidationError) as info:
        CreatePayment.model_validate({**VALID, "amount": amount, "currency": currency})
    [error] = info.value.errors()
    assert error["loc"] == ("amount",)
    assert message in error["msg"]


def test_three_decimal_currency_keeps_its_precision():
    body = CreatePayment.model_validate({**VALID, "amount": "5.125", "currency": "KWD"})
    assert body.money().minor == 5125


@pytest.mark.parametrize(
    "change",
    [
        {"currency": "XXQ"},
        {"order_id": ""},
        {"order_id": "has space"},
        {"return_url": "ftp://example.com"},
        {"metadata": {f"k{i}": "v" for i in range(51)}},
        {"payment_method": {"type": "card"}},
        {"payment_method": {"type": "card", "token": "t", "extra": "no"}},
        {"unknown_field": 1},
    ],
)
def test_create_payment_refuses_invalid_fields(change):
    with pytest.raises(ValidationError):
        CreatePayment.model_validate({**VALID, **change})


def test_capture_amount_is_optional():
    assert CapturePayment.model_validate({}).amount is None
    assert CapturePayment.model_validate({"amount": "10.00"}).amount == Decimal("10.00")


def test_payment_out_uses_decimal_strings_and_hides_tokens():
    created = datetime(2026, 11, 27, tzinfo=UTC)
    view = a_view(
        status=PaymentStatus.PARTIALLY_REFUNDED,
        refunded_minor=1000,
        failure=None,
        fraud=FraudResult(score=12, decision=FraudDecision.ALLOW, reasons=["velocity ok"]),
        refunds=[
            RefundView(
                refund_id="re_1",
                amount=Amount(minor=1000, currency="USD"),
                status=RefundStatus.SUCCEEDED,
                created_at=created,
                failure=Failure(code="x", message="y"),
            )
        ],
        disputes=[
            DisputeView(dispute_id="dp_1", status="needs_response", amount=Amount(minor=4999, currency="USD"))
        ],
    )
    out = PaymentOut.of(view).model_dump(mode="json")
    assert out["amount"] == "49.99"
    assert out["captured_amount"] == "49.99"
    assert out["refunded_amount"] == "10.00"
    assert out["currency"] == "USD"
    assert out["payment_method"] == {"type": "card", "last4": "4242", "brand": "visa"}
    assert out["fraud"] == {"score": 12, "decision": "allow"}
    assert out["refunds"][0]["amount"] == "10.00"
    assert out["refunds"][0]["payment_id"] == view.id
    assert out["disputes"] == [
        {"id": "dp_1", "status": "needs_response", "amount": "49.99", "currency": "USD", "reason": None}
    ]
    assert "pm_secret_token" not in PaymentOut.of(view).model_dump_json()
