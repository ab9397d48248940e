"""The manual bank transfer's settings: `[payment.bank_transfer]`, the account payers send money to."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from activities.gateways.bank_transfer.reference import MAX_PREFIX, iban_is_valid
from activities.gateways.currencies import Currencies

_BIC = re.compile(r"^[A-Z]{6}[A-Z0-9]{2}([A-Z0-9]{3})?$")


class BankTransferSettings(BaseModel):
    """`[payment.bank_transfer]`. Nothing here is a secret: it is what every payer is shown."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "beneficiary_name": "Example Shop GmbH",
                    "iban": "DE89370400440532013000",
                    "bic": "COBADEFFXXX",
                    "bank_name": "Commerzbank",
                }
            ]
        },
    )

    enabled: bool = False
    beneficiary_name: str = Field(min_length=1, max_length=70)
    # One of the two: an IBAN where the bank has one, else the domestic account number.
    iban: str | None = None
    account_number: str | None = Field(default=None, min_length=1, max_length=34)
    bic: str
    bank_name: str = Field(min_length=1, max_length=140)
    # How long the payer has; a fraction of an hour is allowed (tests, demos).
    expiry_hours: float = Field(default=72, gt=0, le=24 * 60)
    reference_prefix: str = Field(default="DP", max_length=MAX_PREFIX, pattern=r"^[A-Za-z0-9]*$")
    currencies: Currencies = Field(default_factory=lambda: ["EUR"], min_length=1)
    min_minor: int = Field(default=1, ge=1)
    max_minor: int = Field(default=10**12, ge=1)

    @field_validator("iban")
    @classmethod
    def _iban_checks(cls, value: str | None) -> str | None:
        if value is None:
            return None
        iban = value.replace(" ", "").upper()
        if not iban_is_valid(iban):
            raise ValueError("not a valid IBAN (its check digits do not hold)")
        return iban

    @field_validator("bic")
    @classmethod
    def _bic_shape(cls, value: str) -> str:
        bic = value.replace(" ", "").upper()
        if not _BIC.match(bic):
            raise ValueError("a BIC is 8 or 11 letters and digits (bank, country, location, branch)")
        return bic

    @model_validator(mode="after")
    def _an_account(self) -> BankTransferSettings:
        if (self.iban is None) == (self.account_number is None):
            raise ValueError("set exactly one of iban and account_number")
        if self.min_minor > self.max_minor:
            raise ValueError("min_minor is above max_minor")
        return self
