"""Stripe's currency rules on top of ISO 4217: zero-decimal, three-decimal (last digit 0), ISK x100."""

from __future__ import annotations

import pytest

from activities.gateways.base import GatewayInvalidRequest
from activities.gateways.stripe.transform import from_stripe_amount, stripe_exponent, to_stripe_amount
from tests.activities.gateways.helpers import STRIPE, pid
from tests.activities.gateways.stripe.stripe_fixtures import (
    fake_stripe,
    stripe_gateway,
    stripe_server,
)
from workflows.gateway_io import GatewayPaymentStatus
from workflows.money import Amount

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")


@pytest.mark.parametrize(
    ("amount", "currency", "stripe_amount"),
    [
        ("49.99", "USD", 4999),
        ("0.50", "EUR", 50),
        ("500", "JPY", 500),  # zero-decimal in both
        ("1000", "CLP", 1000),
        ("500", "ISK", 50000),  # zero-decimal, but Stripe takes it with two decimals
        ("5.120", "KWD", 5120),  # three-decimal, last digit 0
        ("1.230", "BHD", 1230),
        ("1000.00", "MGA", 1000),  # ISO says two decimals, Stripe zero
    ],
)
def test_amounts_convert_both_ways_exactly(amount, currency, stripe_amount):
    ours = Amount.of(amount, currency)

    assert to_stripe_amount(ours) == stripe_amount
    assert from_stripe_amount(stripe_amount, currency.lower()) == ours


@pytest.mark.parametrize(
    ("amount", "currency"),
    [("5.125", "KWD"), ("0.001", "OMR"), ("1000.50", "MGA")],
)
def test_amounts_stripe_cannot_take_are_refused_not_rounded(amount, currency):
    with pytest.raises(GatewayInvalidRequest) as caught:
        to_stripe_amount(Amount.of(amount, currency))

    assert caught.value.code == "amount_precision"


def test_exponents():
    assert [stripe_exponent(c) for c in ("usd", "JPY", "ISK", "KWD", "MGA", "HUF")] == [2, 0, 2, 3, 0, 2]


@pytest.mark.parametrize(
    ("amount", "currency", "sent"),
    [("500", "ISK", "50000"), ("5.120", "KWD", "5120"), ("1000", "JPY", "1000")],
)
async def test_what_the_wire_carries(stripe_gateway, fake_stripe, unique, amount, currency, sent):
    result = await stripe_gateway.authorize(STRIPE.authorize(pid(unique), amount=Amount.of(amount, currency)))

    [request] = fake_stripe.posts()
    assert (request.params["amount"], request.params["currency"]) == (sent, currency.lower())
    assert result.status is GatewayPaymentStatus.SUCCEEDED
    assert result.captured_minor == Amount.of(amount, currency).minor


async def test_a_refused_amount_never_reaches_stripe(stripe_gateway, fake_stripe, unique):
    with pytest.raises(GatewayInvalidRequest):
        await stripe_gateway.authorize(STRIPE.authorize(pid(unique), amount=Amount.of("5.125", "KWD")))

    assert fake_stripe.requests == []
