"""Braintree's pure mapping: sale parameters, decimal amounts per currency, and transactions as
our results; tested on the SDK's own `Transaction` objects, without HTTP."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import braintree
import pytest

from activities.gateways.base import GatewayInvalidRequest
from activities.gateways.braintree.settings import BraintreeSettings
from activities.gateways.braintree.transform import (
    braintree_amount,
    refund_result,
    sale_params,
    transaction_result,
)
from tests.activities.gateways.helpers import GatewayCalls
from workflows.domain import CardMethod, RefundStatus, WalletMethod
from workflows.gateway_io import GatewayPaymentStatus
from workflows.money import Amount

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SETTINGS = BraintreeSettings.model_validate(
    {
        "merchant_id": "m",
        "public_key": "p",
        "private_key": "k",
        "currencies": ["USD", "JPY", "KWD"],
        "merchant_accounts": {"JPY": "acct_jpy", "KWD": "acct_kwd"},
    }
)


def calls(token: str, currency: str = "USD", minor: int = 4_999) -> GatewayCalls:
    return GatewayCalls("braintree", currency, lambda *_: CardMethod(token=token), minor=minor)


def transaction(**fields: Any) -> Any:
    return braintree.Transaction(None, {"id": "t1", "amount": "49.99", "currency_iso_code": "USD", **fields})


@pytest.mark.parametrize(
    ("currency", "minor", "sent"),
    [("USD", 4_999, Decimal("49.99")), ("JPY", 5_000, Decimal("5000")), ("KWD", 12_345, Decimal("12.345"))],
)
def test_amounts_are_decimals_in_the_currencys_own_places(currency, minor, sent) -> None:
    assert str(braintree_amount(Amount(minor=minor, currency=currency), SETTINGS)) == str(sent)
    with pytest.raises(GatewayInvalidRequest):
        braintree_amount(Amount(minor=minor, currency="EUR"), SETTINGS)


def test_a_sale_from_a_nonce_with_3ds_required_in_the_currencys_account() -> None:
    params = sale_params(
        calls("fake-valid-nonce", "JPY", 5_000).authorize("pay_1", request_three_ds=True), SETTINGS
    )
    assert params == {
        "amount": Decimal("5000"),
        "order_id": "pay_1",
        "merchant_account_id": "acct_jpy",
        "options": {"submit_for_settlement": True, "three_d_secure": {"required": True}},
        "payment_method_nonce": "fake-valid-nonce",
    }


def test_an_authorization_with_a_vaulted_card() -> None:
    params = sale_params(calls("dpm_abc").authorize("pay_2", capture=False), SETTINGS)
    assert params["payment_method_token"] == "dpm_abc" and "payment_method_nonce" not in params
    assert params["options"]["submit_for_settlement"] is False and "merchant_account_id" not in params


def test_only_cards() -> None:
    wallet = GatewayCalls("braintree", "USD", lambda *_: WalletMethod(wallet="paypal"), minor=100)
    with pytest.raises(GatewayInvalidRequest):
        sale_params(wallet.authorize("pay_3"), SETTINGS)


@pytest.mark.parametrize(
    ("status", "expected", "captured"),
    [
        ("submitted_for_settlement", GatewayPaymentStatus.SUCCEEDED, 4_999),
        ("settled", GatewayPaymentStatus.SUCCEEDED, 4_999),
        ("authorized", GatewayPaymentStatus.AUTHORIZED, None),
        ("authorizing", GatewayPaymentStatus.PROCESSING, None),
        ("voided", GatewayPaymentStatus.CANCELLED, None),
        ("authorization_expired", GatewayPaymentStatus.CANCELLED, None),
        ("processor_declined", GatewayPaymentStatus.DECLINED, None),
        ("settlement_declined", GatewayPaymentStatus.DECLINED, None),
    ],
)
def test_transaction_statuses(status, expected, captured) -> None:
    result = transaction_result(transaction(status=status))
    assert (result.status, result.captured_minor, result.provider_payment_id) == (expected, captured, "t1")


def test_declines_say_why() -> None:
    declined = transaction_result(
        transaction(
            status="processor_declined",
            processor_response_code="2000",
            processor_response_text="Do Not Honor",
        )
    )
    assert declined.failure is not None
    assert (declined.failure.code, declined.failure.decline_code, declined.failure.message) == (
        "card_declined",
        "2000",
        "Do Not Honor",
    )
    three_ds = transaction_result(
        transaction(status="gateway_rejected", gateway_rejection_reason="three_d_secure")
    )
    assert three_ds.failure is not None and three_ds.failure.code == "authentication_failed"
    fraud = transaction_result(transaction(status="gateway_rejected", gateway_rejection_reason="fraud"))
    assert fraud.failure is not None and (fraud.failure.code, fraud.failure.decline_code) == (
        "card_declined",
        "fraud",
    )


def test_refunds() -> None:
    assert refund_result("rf_1", transaction(type="credit", status="submitted_for_settlement")).status is (
        RefundStatus.SUCCEEDED
    )
    failed = refund_result("rf_1", transaction(type="credit", status="processor_declined"))
    assert (failed.status, failed.provider_refund_id) == (RefundStatus.FAILED, "t1")
