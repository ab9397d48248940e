"""The mock gateway's settings: `[payment.mock]`."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from workflows.money import is_known_currency


class MockSettings(BaseModel):
    """`[payment.mock]`."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    name: str = "Mock gateway"
    currencies: list[str] = Field(default_factory=lambda: ["USD", "EUR", "GBP", "JPY", "CNY"])
    # Only methods that carry a token: the token is what tells the mock how to behave.
    methods: list[str] = Field(default_factory=lambda: ["card"])
    min_minor: int = Field(default=1, ge=1)
    max_minor: int = Field(default=10**12, ge=1)
    latency_ms: int = Field(default=0, ge=0)
    # What `tok_ratelimited_<N>` asks the caller to wait.
    retry_after_seconds: float = Field(default=0.5, ge=0)
    webhook_secret: SecretStr | None = None
    # Still accepted while senders move to `webhook_secret` (secret rotation).
    previous_webhook_secrets: list[SecretStr] = Field(default_factory=list)
    webhook_tolerance_seconds: int = Field(default=300, gt=0)
    webhook_url: str | None = None  # where `send_webhook` posts: our receiver's /webhooks/mock
    three_ds_url: str = "https://3ds.mock.invalid/authenticate"  # the customer's redirect target

    @field_validator("currencies")
    @classmethod
    def _known_currencies(cls, value: list[str]) -> list[str]:
        codes = [code.upper() for code in value]
        unknown = [code for code in codes if not is_known_currency(code)]
        if unknown or not codes:
            raise ValueError(f"need ISO 4217 codes, got unknown {unknown}" if unknown else "no currencies")
        return codes

    @field_validator("methods")
    @classmethod
    def _token_methods(cls, value: list[str]) -> list[str]:
        bad = [m for m in value if m not in ("card", "bnpl") and not m.startswith("wallet:")]
        if bad or not value:
            raise ValueError(f"the mock supports card, bnpl and wallet:<name> methods, not {bad}")
        return value
