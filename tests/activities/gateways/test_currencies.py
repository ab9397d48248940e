"""Every gateway's `currencies` setting goes through one check (activities/gateways/currencies.py)."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, Field, ValidationError

from activities.gateways.currencies import Currencies


class _Settings(BaseModel):
    currencies: Currencies = Field(default_factory=lambda: ["USD"], min_length=1)


def test_codes_are_upper_cased() -> None:
    assert _Settings(currencies=["usd", "Jpy", "KWD"]).currencies == ["USD", "JPY", "KWD"]


@pytest.mark.parametrize(
    ("value", "message"), [(["USD", "XYZ"], "unknown currencies: XYZ"), ([], "at least 1")]
)
def test_unknown_or_no_codes_are_refused(value: list[str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _Settings(currencies=value)
