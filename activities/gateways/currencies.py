"""The `currencies` a gateway's settings accept: ISO 4217 codes, upper-cased on the way in."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator

from workflows.money import is_known_currency


def known_currencies(value: list[str]) -> list[str]:
    codes = [code.upper() for code in value]
    unknown = [code for code in codes if not is_known_currency(code)]
    if unknown:
        raise ValueError(f"unknown currencies: {', '.join(unknown)}")
    return codes


# A settings field `currencies: Currencies = Field(default_factory=..., min_length=1)`.
Currencies = Annotated[list[str], AfterValidator(known_currencies)]
