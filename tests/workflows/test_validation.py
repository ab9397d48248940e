"""`validate_payment`: the pure check the API runs before starting a payment and the workflow runs
again as its first step."""

from __future__ import annotations

import pytest

from workflows.domain import BankTransferMethod, CaptureMethod, CardMethod, GatewayProfile, WalletMethod
from workflows.money import Amount
from workflows.validation import method_key, validate_payment

PROFILE = GatewayProfile(
    id="g",
    name="G",
    methods=["card", "wallet:wechat_pay"],
    currencies=["USD", "JPY"],
    min_minor=50,
    max_minor=10_000,
)
CARD = CardMethod(token="tok")


USD_1 = Amount(minor=100, currency="USD")


def check(amount=USD_1, method=CARD, capture=CaptureMethod.AUTOMATIC, profile=PROFILE):
    failure = validate_payment(profile, amount, method, capture)
    return failure.code if failure else None


def test_method_keys_name_wallets_by_wallet():
    assert method_key(CARD) == "card"
    assert method_key(WalletMethod(wallet="alipay", flow="page")) == "wallet:alipay"
    assert method_key(BankTransferMethod()) == "bank_transfer"


def test_wallets_are_accepted_one_by_one_or_all_by_type():
    assert check(method=WalletMethod(wallet="wechat_pay")) is None
    assert check(method=WalletMethod(wallet="alipay")) == "payment_method_not_supported"
    every_wallet = PROFILE.model_copy(update={"methods": ["wallet"]})
    assert check(method=WalletMethod(wallet="alipay"), profile=every_wallet) is None


@pytest.mark.parametrize(
    "minor, code",
    [
        (49, "amount_too_small"),
        (50, None),
        (10_000, None),
        (10_001, "amount_too_large"),
        (0, "invalid_amount"),
        (-1, "invalid_amount"),
    ],
)
def test_limits_are_inclusive(minor, code):
    assert check(amount=Amount(minor=minor, currency="USD")) == code


def test_the_first_reason_is_reported():
    assert (
        check(amount=Amount(minor=1, currency="EUR"), method=BankTransferMethod()) == "currency_not_supported"
    )


def test_manual_capture_needs_a_gateway_that_holds_funds():
    wallet_only = PROFILE.model_copy(update={"supports_manual_capture": False})
    assert check(capture=CaptureMethod.MANUAL, profile=wallet_only) == "manual_capture_not_supported"
    assert check(capture=CaptureMethod.MANUAL) is None
