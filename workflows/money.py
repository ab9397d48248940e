"""Money: `Decimal` at the edges, integer minor units (always paired with a currency) inside.

The exponent table is ISO 4217 (list one, active codes). A gateway whose provider deviates from ISO
(Stripe's ISK, three-decimal rounding) adapts in its own module; this one only knows the standard.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from pydantic import BaseModel, ConfigDict, field_validator

# ISO 4217 minor-unit exponents that are not 2. Every other active code has exponent 2.
_EXPONENT_NOT_TWO: dict[str, int] = {
    # zero-decimal
    "BIF": 0,
    "CLP": 0,
    "DJF": 0,
    "GNF": 0,
    "ISK": 0,
    "JPY": 0,
    "KMF": 0,
    "KRW": 0,
    "PYG": 0,
    "RWF": 0,
    "UGX": 0,
    "UYI": 0,
    "VND": 0,
    "VUV": 0,
    "XAF": 0,
    "XOF": 0,
    "XPF": 0,
    # three-decimal
    "BHD": 3,
    "IQD": 3,
    "JOD": 3,
    "KWD": 3,
    "LYD": 3,
    "OMR": 3,
    "TND": 3,
    # four-decimal (units of account)
    "CLF": 4,
    "UYW": 4,
}

_EXPONENT_TWO = frozenset(
    [
        "AED",
        "AFN",
        "ALL",
        "AMD",
        "AOA",
        "ARS",
        "AUD",
        "AWG",
        "AZN",
        "BAM",
        "BBD",
        "BDT",
        "BGN",
        "BMD",
        "BND",
        "BOB",
        "BOV",
        "BRL",
        "BSD",
        "BTN",
        "BWP",
        "BYN",
        "BZD",
        "CAD",
        "CDF",
        "CHE",
        "CHF",
        "CHW",
        "CNY",
        "COP",
        "COU",
        "CRC",
        "CUP",
        "CVE",
        "CZK",
        "DKK",
        "DOP",
        "DZD",
        "EGP",
        "ERN",
        "ETB",
        "EUR",
        "FJD",
        "FKP",
        "GBP",
        "GEL",
        "GHS",
        "GIP",
        "GMD",
        "GTQ",
        "GYD",
        "HKD",
        "HNL",
        "HTG",
        "HUF",
        "IDR",
        "ILS",
        "INR",
        "IRR",
        "JMD",
        "KES",
        "KGS",
        "KHR",
        "KPW",
        "KYD",
        "KZT",
        "LAK",
        "LBP",
        "LKR",
        "LRD",
        "LSL",
        "MAD",
        "MDL",
        "MGA",
        "MKD",
        "MMK",
        "MNT",
        "MOP",
        "MRU",
        "MUR",
        "MVR",
        "MWK",
        "MXN",
        "MXV",
        "MYR",
        "MZN",
        "NAD",
        "NGN",
        "NIO",
        "NOK",
        "NPR",
        "NZD",
        "PAB",
        "PEN",
        "PGK",
        "PHP",
        "PKR",
        "PLN",
        "QAR",
        "RON",
        "RSD",
        "RUB",
        "SAR",
        "SBD",
        "SCR",
        "SDG",
        "SEK",
        "SGD",
        "SHP",
        "SLE",
        "SOS",
        "SRD",
        "SSP",
        "STN",
        "SVC",
        "SYP",
        "SZL",
        "THB",
        "TJS",
        "TMT",
        "TOP",
        "TRY",
        "TTD",
        "TWD",
        "TZS",
        "UAH",
        "USD",
        "USN",
        "UYU",
        "UZS",
        "VED",
        "VES",
        "WST",
        "XCD",
        "XCG",
        "YER",
        "ZAR",
        "ZMW",
        "ZWG",
    ]
)


class MoneyError(ValueError):
    """An amount or currency that cannot be represented exactly."""


def exponent(currency: str) -> int:
    """The ISO 4217 minor-unit exponent of `currency` (upper-case alpha code)."""
    code = currency.upper()
    if code in _EXPONENT_NOT_TWO:
        return _EXPONENT_NOT_TWO[code]
    if code in _EXPONENT_TWO:
        return 2
    raise MoneyError(f"unknown currency {currency!r}: expected an ISO 4217 code such as USD")


def is_known_currency(currency: str) -> bool:
    code = currency.upper()
    return code in _EXPONENT_NOT_TWO or code in _EXPONENT_TWO


def to_minor(amount: Decimal | str, currency: str) -> int:
    """`Decimal("49.99"), "USD"` -> 4999. Rejects excess precision instead of rounding."""
    try:
        value = amount if isinstance(amount, Decimal) else Decimal(amount)
    except (InvalidOperation, TypeError) as exc:
        raise MoneyError(f"{amount!r} is not a decimal amount") from exc
    if not value.is_finite():
        raise MoneyError(f"{amount!r} is not a finite amount")
    exp = exponent(currency)
    scaled = value.scaleb(exp)
    if scaled != scaled.to_integral_value():
        raise MoneyError(f"{value} has more decimal places than {currency.upper()} allows ({exp})")
    return int(scaled)


def from_minor(minor: int, currency: str) -> Decimal:
    """4999, "USD" -> Decimal("49.99"), always with exactly the currency's number of places."""
    exp = exponent(currency)
    return Decimal(minor).scaleb(-exp).quantize(Decimal(1).scaleb(-exp))


class Amount(BaseModel):
    """An integer number of minor units and the currency that gives them meaning."""

    model_config = ConfigDict(frozen=True)

    minor: int
    currency: str

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, value: str) -> str:
        code = value.upper()
        exponent(code)
        return code

    @classmethod
    def of(cls, amount: Decimal | str, currency: str) -> Amount:
        return cls(minor=to_minor(amount, currency), currency=currency)

    def to_decimal(self) -> Decimal:
        return from_minor(self.minor, self.currency)

    def with_minor(self, minor: int) -> Amount:
        return Amount(minor=minor, currency=self.currency)

    def __str__(self) -> str:
        return f"{self.to_decimal()} {self.currency}"
