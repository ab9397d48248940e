"""WeChat Pay's settings: `[payment.wechat_pay]`."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from activities.gateways.http import HttpSettings, secure_base_url
from activities.gateways.signing import load_private_key, load_public_key

DEFAULT_API_BASE = "https://api.mch.weixin.qq.com"


class WechatPaySettings(BaseModel):
    """`[payment.wechat_pay]`. Keys are PEM text or the path of a PEM file (`*_file`)."""

    # The example configuration's snippet (workers/config_example.py); secrets go only to the
    # example Kubernetes Secret.
    model_config = ConfigDict(
        extra="forbid",
        # Validation errors end up in logs: never with the values, which may be keys.
        hide_input_in_errors=True,
        json_schema_extra={
            "examples": [
                {
                    "mchid": "1900000001",
                    "appid": "wx0000000000000000",
                    "merchant_serial_no": "EXAMPLE",
                    "notify_url": "https://pay.example.com/webhooks/wechat_pay",
                    "private_key": "CHANGE-ME (apiclient_key.pem)",
                    "apiv3_key": "CHANGE-ME-to-the-32-byte-APIv3-key",
                }
            ]
        },
    )

    enabled: bool = False
    mchid: str = Field(min_length=1, max_length=32)
    appid: str = Field(min_length=1, max_length=32)
    merchant_serial_no: str = Field(
        min_length=1, max_length=64, description="merchant API certificate serial"
    )
    private_key: SecretStr | None = Field(
        default=None, description="merchant API private key (apiclient_key.pem)"
    )
    private_key_file: Path | None = None
    apiv3_key: SecretStr = Field(description="the 32-character APIv3 key")
    # Platform certificate mode: pinned certificates, and/or downloaded from /v3/certificates.
    platform_certificates: list[str] = Field(default_factory=list)
    platform_certificate_files: list[Path] = Field(default_factory=list)
    fetch_platform_certificates: bool | None = Field(
        default=None, description="download platform certificates; default: only without a public key"
    )
    certificate_refresh_seconds: float = Field(default=12 * 3600, gt=0)
    # Public-key mode (the newer one): the WeChat Pay public key and its PUB_KEY_ID_... id.
    platform_public_key: str | None = None
    platform_public_key_file: Path | None = None
    platform_public_key_id: str | None = None
    api_base: str = DEFAULT_API_BASE
    notify_url: str = Field(min_length=1)
    currency: str = "CNY"
    http: HttpSettings = Field(default_factory=HttpSettings)

    @field_validator("api_base")
    @classmethod
    def _api_base_keeps_the_signature_safe(cls, value: str) -> str:
        # Every request carries our signature, and the customer's data.
        return secure_base_url(value, "api_base")

    @model_validator(mode="after")
    def _resolve_keys(self) -> WechatPaySettings:
        if self.private_key_file is not None:
            if self.private_key is not None:
                raise ValueError("give private_key or private_key_file, not both")
            self.private_key = SecretStr(self.private_key_file.read_text())
        if self.private_key is None:
            raise ValueError("private_key (or private_key_file) is required")
        try:
            load_private_key(self.private_key.get_secret_value())
        except ValueError as exc:
            raise ValueError("private_key is not an RSA private key in PEM format") from exc
        if len(self.apiv3_key.get_secret_value().encode()) != 32:
            raise ValueError("apiv3_key must be exactly 32 bytes")
        if self.platform_public_key_file is not None:
            self.platform_public_key = self.platform_public_key_file.read_text()
        if (self.platform_public_key is None) != (self.platform_public_key_id is None):
            raise ValueError("platform_public_key and platform_public_key_id go together")
        if self.platform_public_key is not None:
            load_public_key(self.platform_public_key)
        self.platform_certificates = [
            *self.platform_certificates,
            *(path.read_text() for path in self.platform_certificate_files),
        ]
        self.platform_certificate_files = []
        for pem in self.platform_certificates:
            load_public_key(pem)
        if self.fetch_platform_certificates is None:
            self.fetch_platform_certificates = self.platform_public_key is None
        if not (self.fetch_platform_certificates or self.platform_certificates or self.platform_public_key):
            raise ValueError("no way to verify WeChat Pay: configure a platform public key or certificates")
        self.currency = self.currency.upper()
        return self
