"""workflows.money: the ISO 4217 exponent table and exact conversion to and from minor units."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from workflows.money import Amount, MoneyError, exponent, from_minor, is_known_currency, to_minor


@pytest.mark.parametrize(
    ("currency", "places"),
    [
        ("USD", 2),
        ("EUR", 2),
        ("CNY", 2),
        ("JPY", 0),
        ("KRW", 0),
        ("ISK", 0),
        ("KWD", 3),
        ("BHD", 3),
        ("CLF", 4),
        ("usd", 2),
    ],
)
def test_exponent_follows_iso_4217(currency: str, places: int) -> None:
    assert exponent(currency) == places


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [
        ("49.99", "USD", 4999),
        ("49.9", "USD", 4990),
        ("100", "JPY", 100),
        ("1.234", "KWD", 1234),
        ("0.01", "EUR", 1),
    ],
)
def test_to_and_from_minor_round_trip_exactly(amount: str, currency: str, minor: int) -> None:
    assert to_minor(Decimal(amount), currency) == minor
    assert from_minor(minor, currency) == Decimal(amount)


def test_from_minor_always_shows_the_currencys_places() -> None:
    assert str(from_minor(5000, "USD")) == "50.00"
    assert str(from_minor(5, "JPY")) == "5"
    assert str(from_minor(1230, "KWD")) == "1.230"


@pytest.mark.parametrize(
    ("amount", "currency"),
    [("1.5", "JPY"), ("49.999", "USD"), ("1.2345", "KWD"), ("0.001", "EUR")],
)
def test_excess_precision_is_refused_not_rounded(amount: str, currency: str) -> None:
    with pytest.raises(MoneyError, match="more decimal places"):
        to_minor(amount, currency)


@pytest.mark.parametrize("amount", ["abc", "NaN", "Infinity", ""])
def test_non_amounts_are_refused(amount: str) -> None:
    with pytest.raises(MoneyError):
        to_minor(amount, "USD")


def test_unknown_currency_is_refused() -> None:
    assert not is_known_currency("XYZ")
    with pytest.raises(MoneyError, match="unknown currency"):
        to_minor("1.00", "XYZ")
    with pytest.raises(ValidationError):
        Amount(minor=100, currency="XYZ")


def test_amount_pairs_minor_units_with_its_currency() -> None:
    amount = Amount.of("12.30", "eur")
    assert (amount.minor, amount.currency) == (1230, "EUR")
    assert amount.to_decimal() == Decimal("12.30")
    assert str(amount.with_minor(5)) == "0.05 EUR"
    assert amount != Amount(minor=1230, currency="USD")  # same number, other money
