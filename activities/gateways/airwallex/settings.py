"""Airwallex's settings: `[payment.airwallex]`."""

from __future__ import annotations

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from activities.gateways.currencies import Currencies
from activities.gateways.http import HttpSettings

PRODUCTION_API_BASE = "https://api.airwallex.com"
SANDBOX_API_BASE = "https://api-demo.airwallex.com"
# Airwallex documents no window; its community SDK and the other providers here use five minutes.
WEBHOOK_TOLERANCE_SECONDS = 300
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


class AirwallexSettings(BaseModel):
    """`[payment.airwallex]`."""

    # Validation errors end up in logs: never with the values, which may be keys. The example
    # snippet feeds workers/config_example.py; secrets go only to the example Kubernetes Secret.
    model_config = ConfigDict(
        extra="forbid",
        hide_input_in_errors=True,
        json_schema_extra={
            "examples": [
                {
                    "client_id": "CHANGE-ME",
                    "api_key": "CHANGE-ME",
                    "webhook_secret": "whsec_CHANGE-ME",
                }
            ]
        },
    )

    enabled: bool = False
    client_id: str = Field(min_length=1, max_length=128)
    api_key: SecretStr
    webhook_secret: SecretStr = Field(description="the webhook endpoint's secret (signs x-signature)")
    sandbox: bool = False
    api_base: str | None = Field(default=None, description="overrides the production / sandbox host")
    currencies: Currencies = Field(
        default_factory=lambda: ["USD", "EUR", "GBP", "AUD", "HKD", "SGD", "JPY"], min_length=1
    )
    min_minor: int = Field(default=1, ge=1)
    max_minor: int = Field(default=10**12, ge=1)
    # Airwallex's tokens live 30 minutes; a fresh one is fetched this long before the old one ends.
    token_refresh_margin_seconds: float = Field(default=120.0, ge=0)
    webhook_tolerance_seconds: int = Field(default=WEBHOOK_TOLERANCE_SECONDS, gt=0)
    http: HttpSettings = Field(default_factory=HttpSettings)

    @field_validator("api_key", "webhook_secret")
    @classmethod
    def _not_blank(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("must not be blank")
        return value

    @field_validator("api_base")
    @classmethod
    def _api_base_keeps_the_key_safe(cls, value: str | None) -> str | None:
        # The API key and the bearer token ride in request headers: plain HTTP only to a local fake.
        if value is None:
            return None
        url = httpx.URL(value)
        if url.scheme == "https" or (url.scheme == "http" and url.host in _LOOPBACK):
            return value.rstrip("/")
        raise ValueError("api_base must be https:// (plain http only to a loopback test server)")

    @property
    def endpoint(self) -> str:
        return self.api_base or (SANDBOX_API_BASE if self.sandbox else PRODUCTION_API_BASE)
