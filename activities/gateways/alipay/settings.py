"""AliPay's settings: `[payment.alipay]`."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from activities.gateways.http import HttpSettings, secure_base_url
from activities.gateways.signing import load_private_key, load_public_key

PRODUCTION_GATEWAY = "https://openapi.alipay.com/gateway.do"
SANDBOX_GATEWAY = "https://openapi-sandbox.dl.alipaydev.com/gateway.do"


class AlipaySettings(BaseModel):
    """`[payment.alipay]`. Keys are PEM text, AliPay's bare base64, or a file (`*_file`)."""

    # The example configuration's snippet (workers/config_example.py); secrets go only to the
    # example Kubernetes Secret.
    model_config = ConfigDict(
        extra="forbid",
        # Validation errors end up in logs: never with the values, which may be keys.
        hide_input_in_errors=True,
        json_schema_extra={
            "examples": [
                {
                    "app_id": "2021000000000000",
                    "notify_url": "https://pay.example.com/webhooks/alipay",
                    "app_private_key": "CHANGE-ME (the app's RSA2 private key, PEM)",
                }
            ]
        },
    )

    enabled: bool = False
    app_id: str = Field(min_length=1, max_length=32)
    app_private_key: SecretStr | None = None
    app_private_key_file: Path | None = None
    alipay_public_key: str | None = Field(default=None, description="AliPay's public key (not the app's)")
    alipay_public_key_file: Path | None = None
    sandbox: bool = False
    gateway_url: str | None = Field(default=None, description="overrides the production / sandbox gateway")
    notify_url: str = Field(min_length=1)
    return_url: str | None = None
    seller_id: str | None = Field(default=None, description="when set, notifications must name this seller")
    currency: str = "CNY"
    http: HttpSettings = Field(default_factory=HttpSettings)
    # How long after a refund was asked for a refund query without `refund_status` ("not received,
    # or failed"; early queries miss successes) still means "ask again" rather than "failed".
    refund_query_window_seconds: int = Field(default=86_400, gt=0)

    @field_validator("gateway_url")
    @classmethod
    def _gateway_url_keeps_the_request_safe(cls, value: str | None) -> str | None:
        # Every request carries our signature, and the customer's data.
        return None if value is None else secure_base_url(value, "gateway_url")

    @model_validator(mode="after")
    def _resolve_keys(self) -> AlipaySettings:
        if self.app_private_key_file is not None:
            if self.app_private_key is not None:
                raise ValueError("give app_private_key or app_private_key_file, not both")
            self.app_private_key = SecretStr(self.app_private_key_file.read_text())
        if self.app_private_key is None:
            raise ValueError("app_private_key (or app_private_key_file) is required")
        try:
            load_private_key(self.app_private_key.get_secret_value())
        except ValueError as exc:
            raise ValueError("app_private_key is not an RSA private key (PEM or base64 PKCS#8)") from exc
        if self.alipay_public_key_file is not None:
            self.alipay_public_key = self.alipay_public_key_file.read_text()
        if not self.alipay_public_key:
            raise ValueError("alipay_public_key (or alipay_public_key_file) is required to verify AliPay")
        try:
            load_public_key(self.alipay_public_key)
        except ValueError as exc:
            raise ValueError("alipay_public_key is not an RSA public key") from exc
        self.currency = self.currency.upper()
        return self

    @property
    def endpoint(self) -> str:
        return self.gateway_url or (SANDBOX_GATEWAY if self.sandbox else PRODUCTION_GATEWAY)
