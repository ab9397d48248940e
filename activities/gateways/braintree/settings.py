"""Braintree's settings: `[payment.braintree]`."""

from __future__ import annotations

from typing import Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from activities.gateways.currencies import Currencies

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


class BraintreeSettings(BaseModel):
    """`[payment.braintree]`."""

    # Validation errors end up in logs: never with the values, which may be keys.
    model_config = ConfigDict(
        extra="forbid",
        hide_input_in_errors=True,
        json_schema_extra={
            "examples": [
                {
                    "merchant_id": "CHANGE-ME",
                    "public_key": "CHANGE-ME",
                    "private_key": "CHANGE-ME",
                    "environment": "production",
                }
            ]
        },
    )

    enabled: bool = False
    merchant_id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_-]+$")
    public_key: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_-]+$")
    private_key: SecretStr
    environment: Literal["sandbox", "production"] = "sandbox"
    # Only for a fake Braintree on this machine (tests, `durapay dev`): replaces `environment`.
    api_base: str | None = None
    currencies: Currencies = Field(default_factory=lambda: ["USD"], min_length=1)
    # A Braintree merchant account settles in one currency: the account for each currency that is
    # not the default account's (absent: the default account takes it).
    merchant_accounts: dict[str, str] = Field(default_factory=dict)
    min_minor: int = Field(default=1, ge=1)
    max_minor: int = Field(default=99_999_999, ge=1)
    timeout_seconds: float = Field(default=30.0, gt=0)
    connect_timeout_seconds: float = Field(default=5.0, gt=0)
    # SDK calls block a thread each: at most this many run at once per worker.
    max_threads: int = Field(default=8, ge=1, le=64)

    @field_validator("private_key")
    @classmethod
    def _private_key_not_blank(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("private_key must not be blank")
        return value

    @field_validator("api_base")
    @classmethod
    def _api_base_is_a_local_fake(cls, value: str | None) -> str | None:
        # The key pair rides in every request's Authorization header: plain HTTP only to this host.
        if value is None:
            return None
        url = httpx.URL(value)
        if url.scheme == "http" and url.host in _LOOPBACK and url.port and url.path in ("", "/"):
            return value
        raise ValueError(
            "api_base is for a local fake only: http://127.0.0.1:<port>; use environment otherwise"
        )

    @field_validator("merchant_accounts")
    @classmethod
    def _accounts_by_currency(cls, value: dict[str, str]) -> dict[str, str]:
        return {currency.upper(): account for currency, account in value.items()}

    @model_validator(mode="after")
    def _consistent(self) -> BraintreeSettings:
        if self.min_minor > self.max_minor:
            raise ValueError("min_minor is above max_minor")
        stray = sorted(set(self.merchant_accounts) - set(self.currencies))
        if stray:
            raise ValueError(f"merchant_accounts name currencies not in currencies: {', '.join(stray)}")
        return self
