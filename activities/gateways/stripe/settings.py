"""Stripe's settings: `[payment.stripe]`."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from activities.gateways.currencies import Currencies
from activities.gateways.http import secure_base_url

DEFAULT_API_BASE = "https://api.stripe.com"
WEBHOOK_TOLERANCE_SECONDS = 300

# Statement descriptors: Latin letters, digits, spaces and a little punctuation; never <>\'"*.
_DESCRIPTOR_FORBIDDEN = re.compile(r"[<>\\'\"*]")


class StripeSettings(BaseModel):
    """`[payment.stripe]`."""

    # Validation errors end up in logs: never with the values, which may be keys.
    model_config = ConfigDict(
        extra="forbid",
        hide_input_in_errors=True,
        # The example configuration's snippet (workers/config_example.py); secrets go only to the
        # example Kubernetes Secret.
        json_schema_extra={
            "examples": [
                {
                    "secret_key": "sk_live_CHANGE-ME",
                    "webhook_secret": "whsec_CHANGE-ME",
                    "publishable_key": "pk_live_...",
                }
            ]
        },
    )

    enabled: bool = False
    secret_key: SecretStr
    publishable_key: str | None = None
    # Several while rolling the endpoint secret: a webhook signed with any of them is accepted.
    webhook_secret: list[SecretStr] = Field(min_length=1)
    # The account's static descriptor (the prefix of card statements, set in the Dashboard); kept here
    # only so the suffix can be checked to fit the 22 characters the networks print.
    statement_descriptor: str | None = Field(default=None, min_length=5, max_length=22)
    statement_descriptor_suffix: str | None = Field(default=None, min_length=1, max_length=22)
    api_base: str = DEFAULT_API_BASE
    api_version: str | None = None  # None: the version the SDK is pinned to
    currencies: Currencies = Field(default_factory=lambda: ["USD", "EUR", "GBP"], min_length=1)
    min_minor: int = Field(default=50, ge=1)  # Stripe's floor is about 0.50 USD in most currencies
    max_minor: int = Field(default=99_999_999, ge=1)  # Stripe takes at most eight digits
    max_network_retries: int = Field(default=0, ge=0)  # Temporal retries; the SDK should not
    timeout_seconds: float = Field(default=30.0, gt=0)
    connect_timeout_seconds: float = Field(default=5.0, gt=0)
    webhook_tolerance_seconds: int = Field(default=WEBHOOK_TOLERANCE_SECONDS, gt=0)
    # How long after a payment's creation an empty Search is not believed. Search is eventually
    # consistent: Stripe says under a minute normally, up to an hour during incidents. Until then a
    # lookup that finds nothing asks again instead of answering "never made".
    search_lag_seconds: int = Field(default=900, ge=0)

    @field_validator("webhook_secret", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str | SecretStr) else value

    @field_validator("secret_key")
    @classmethod
    def _secret_key_shape(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith(("sk_", "rk_")):
            raise ValueError("expected a Stripe secret (sk_...) or restricted (rk_...) key")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secrets_not_blank(cls, value: list[SecretStr]) -> list[SecretStr]:
        if any(not s.get_secret_value().strip() for s in value):
            raise ValueError("webhook secrets must not be blank")
        return value

    @field_validator("api_base")
    @classmethod
    def _api_base_keeps_the_key_safe(cls, value: str) -> str:
        # The secret key rides in every request's Authorization header.
        return secure_base_url(value, "api_base")

    @field_validator("statement_descriptor", "statement_descriptor_suffix")
    @classmethod
    def _descriptor_characters(cls, value: str | None) -> str | None:
        if value is not None:
            if _DESCRIPTOR_FORBIDDEN.search(value) or not value.isascii():
                raise ValueError("statement descriptors take Latin characters only, without < > \\ ' \" *")
            if not re.search(r"[A-Za-z]", value):
                raise ValueError("statement descriptors need at least one letter")
        return value

    @model_validator(mode="after")
    def _descriptor_fits(self) -> StripeSettings:
        if self.min_minor > self.max_minor:
            raise ValueError("min_minor is above max_minor")
        if self.statement_descriptor and self.statement_descriptor_suffix:
            # Card statements print "PREFIX* SUFFIX"; Stripe truncates what does not fit in 22.
            full = len(self.statement_descriptor) + 2 + len(self.statement_descriptor_suffix)
            if full > 22:
                raise ValueError(
                    f"statement descriptor and suffix make {full} characters with '* '; at most 22 print"
                )
        return self
