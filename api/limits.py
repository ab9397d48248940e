"""How much the API accepts and how long it waits: `ApiLimits`, and the `RateLimit` it hands out.

Its own module, importing nothing but pydantic, because the configuration (workers/config.py)
extends `ApiLimits` and must stay cheap to import.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network

from pydantic import BaseModel, ConfigDict, Field


@dataclass(frozen=True)
class RateLimit:
    """At most `limit` requests per `window_s` seconds, per API key (merchant API), per gateway
    and sender address (webhooks), or payment attempts per order, customer or customer IP."""

    limit: int
    window_s: int = 60


class ApiLimits(BaseModel):
    """How much the API accepts and how long it waits. The configuration's `[api]` section extends
    this model (workers/config.py), so these fields are its keys and their defaults the defaults."""

    model_config = ConfigDict(extra="forbid")

    max_body_bytes: int = Field(default=64 * 1024, gt=0)
    rate_limit_per_minute: int = Field(default=600, gt=0)  # per API key
    # Codec server requests (/codec: the Temporal UI decoding histories) per API key: each hands
    # out customer data in the clear.
    codec_rate_limit_per_minute: int = Field(default=300, gt=0)
    # Per gateway and sender, per API instance: a token bucket holding this many, refilled over a minute.
    webhook_rate_limit_per_minute: int = Field(default=6000, gt=0)
    # Rejected webhooks (bad signature, forged bodies) recorded in the inbox, per gateway and API
    # instance: a sample for investigation; every rejection is counted in the metrics all the same.
    rejected_webhook_samples_per_minute: int = Field(default=10, gt=0)
    # Proxies (CIDRs, e.g. the ingress) whose X-Forwarded-For names the webhook's sender; from any
    # other peer the header is ignored, or a flood could name a new sender with every request.
    trusted_proxies: list[IPv4Network | IPv6Network] = Field(default_factory=list)
    # New payments per hour (a replay of one is not a new attempt), against card testing and retry
    # storms: per order, per customer, per customer IP address (the customer's, as sent).
    order_attempts_per_hour: int = Field(default=5, gt=0)
    customer_attempts_per_hour: int = Field(default=10, gt=0)
    ip_attempts_per_hour: int = Field(default=20, gt=0)
    # How long POST /v1/payments waits for a decision before it answers 202 with the payment as it
    # stands (a provider that is slow to answer); the payment itself goes on either way.
    decide_timeout_seconds: float = Field(default=30, gt=0)
    # How long POST /actions/complete waits for the payment to leave `authorizing` before it
    # answers 202 and leaves the rest to polling or the merchant's own webhook.
    action_complete_wait_seconds: float = Field(default=5, ge=0)

    @property
    def api_rate_limit(self) -> RateLimit:
        return RateLimit(limit=self.rate_limit_per_minute, window_s=60)

    @property
    def codec_rate_limit(self) -> RateLimit:
        return RateLimit(limit=self.codec_rate_limit_per_minute, window_s=60)

    @property
    def webhook_rate_limit(self) -> RateLimit:
        return RateLimit(limit=self.webhook_rate_limit_per_minute, window_s=60)

    @property
    def rejected_webhook_sample(self) -> RateLimit:
        return RateLimit(limit=self.rejected_webhook_samples_per_minute, window_s=60)

    @property
    def order_attempt_limit(self) -> RateLimit:
        return RateLimit(limit=self.order_attempts_per_hour, window_s=3600)

    @property
    def customer_attempt_limit(self) -> RateLimit:
        return RateLimit(limit=self.customer_attempts_per_hour, window_s=3600)

    @property
    def ip_attempt_limit(self) -> RateLimit:
        return RateLimit(limit=self.ip_attempts_per_hour, window_s=3600)
