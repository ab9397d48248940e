"""PayPal's settings: `[payment.paypal]`."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from activities.gateways.currencies import Currencies
from activities.gateways.http import HttpSettings, secure_base_url

PRODUCTION_API = "https://api-m.paypal.com"
SANDBOX_API = "https://api-m.sandbox.paypal.com"
WEBHOOK_TOLERANCE_SECONDS = 600


class PayPalSettings(BaseModel):
    """`[payment.paypal]`."""

    # Validation errors end up in logs: never with the values, which may be secrets.
    model_config = ConfigDict(
        extra="forbid",
        hide_input_in_errors=True,
        # The example configuration's snippet (workers/config_example.py); secrets go only to the
        # example Kubernetes Secret.
        json_schema_extra={
            "examples": [
                {
                    "client_id": "CHANGE-ME (the REST app's client id)",
                    "client_secret": "CHANGE-ME",
                    "webhook_id": "CHANGE-ME (the id of the webhook subscribed to /webhooks/paypal)",
                }
            ]
        },
    )

    enabled: bool = False
    client_id: str = Field(min_length=1)
    client_secret: SecretStr
    # The id of *our* webhook subscription: PayPal signs it into every notification it sends us.
    webhook_id: str = Field(min_length=1)
    sandbox: bool = False
    api_base: str | None = Field(default=None, description="overrides the production / sandbox host")
    # PayPal's HUF, JPY and TWD take no decimals; the others two. No three-decimal currency.
    currencies: Currencies = Field(default_factory=lambda: ["USD", "EUR", "GBP", "JPY"], min_length=1)
    brand_name: str | None = Field(default=None, max_length=127)
    # PayPal checks no age; each delivery attempt is signed anew, so an old one is a replay.
    webhook_tolerance_seconds: int = Field(default=WEBHOOK_TOLERANCE_SECONDS, gt=0)
    http: HttpSettings = Field(default_factory=HttpSettings)

    @field_validator("client_secret")
    @classmethod
    def _secret_not_blank(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("client_secret must not be blank")
        return value

    @field_validator("api_base")
    @classmethod
    def _api_base_keeps_the_secret_safe(cls, value: str | None) -> str | None:
        # The client secret and bearer tokens ride in every request.
        return None if value is None else secure_base_url(value, "api_base").rstrip("/")

    @property
    def endpoint(self) -> str:
        return self.api_base or (SANDBOX_API if self.sandbox else PRODUCTION_API)
