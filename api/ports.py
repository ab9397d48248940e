"""What the API needs from the rest of the system, as Protocols.

`api/` never imports `activities/`: the composition root (`workers/`) implements these ports with the
store, the gateway registry and the webhook inbox, and hands them over in an `ApiDeps`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from pydantic import SecretStr
from temporalio.client import Client, WorkflowHandle
from temporalio.converter import PayloadCodec

from workflows.domain import GatewayProfile, PaymentSettings, PaymentView
from workflows.gateway_io import GatewayEvent
from workflows.merchant_events import StoredMerchantEvent


class WebhookRejected(Exception):
    """A notification whose signature, timestamp or shape did not check out.

    workers/ raises it in place of activities' `WebhookVerificationError`; the message is logged,
    never sent back, so a forger learns nothing about which check failed."""


class StoreUnavailable(Exception):
    """The store did not answer: the database is down, restarting or unreachable.

    workers/ raises it in place of the database driver's connection errors, so that the API can
    answer 503 (retry with the same Idempotency-Key; providers send the webhook again) instead
    of a 500 that tells the caller something is broken for good."""


class WebhookOutcome(StrEnum):
    """What the receiver did with one notification, as recorded in the inbox."""

    SIGNALLED = "signalled"  # Temporal accepted the signal
    UNKNOWN_PAYMENT = "unknown_payment"  # no payment of ours: acknowledged so the provider stops
    REJECTED = "rejected"  # signature check failed: nothing signalled


class PaymentReader(Protocol):
    """The payments projection (the store)."""

    async def get(self, payment_id: str) -> PaymentView | None: ...

    async def list_by_order(self, order_id: str) -> list[PaymentView]: ...


class ProviderRefIndex(Protocol):
    """Finds our payment from the provider's id, for notifications that do not echo our reference."""

    async def payment_id_for_provider_ref(self, gateway: str, provider_payment_id: str) -> str | None: ...


class WebhookGateways(Protocol):
    """The enabled gateways, seen from the webhook receiver."""

    def known(self, gateway_id: str) -> bool: ...

    def parse(self, gateway_id: str, headers: Mapping[str, str], body: bytes) -> list[GatewayEvent]:
        """Verify the raw notification and normalize it; raises `WebhookRejected`."""
        ...

    def ack(self, gateway_id: str) -> tuple[int, bytes, str]:
        """(status, body, content type) the provider expects once its notification is handled."""
        ...


class WebhookInbox(Protocol):
    """Every notification received, verified or not, with what was done about it."""

    async def record(
        self,
        *,
        gateway: str,
        event_id: str,
        payment_id: str | None,
        verified: bool,
        outcome: WebhookOutcome,
        event_type: str,
    ) -> bool:
        """Record one delivery; True unless a verified delivery of (gateway, event_id) is already
        recorded, in which case nothing changes. The receiver records only after Temporal took the
        signal, so a delivery answered 503 leaves no record to shadow its successful retry."""
        ...


class MerchantEventLog(Protocol):
    """The merchant events (workflows/merchant_events.py) and their webhook delivery."""

    async def list(
        self, *, payment_id: str | None, type: str | None, limit: int, starting_after: str | None
    ) -> tuple[list[StoredMerchantEvent], bool]:
        """Newest first after the cursor event; (page, more follow)."""
        ...

    async def get(self, event_id: str) -> StoredMerchantEvent | None: ...

    async def redeliver(self, event_id: str) -> StoredMerchantEvent | None:
        """Queue the event for delivery again (with its id: the merchant de-duplicates) and wake
        its payment's delivery; None when there is no such event."""
        ...


class PaymentReopener(Protocol):
    """Starts a run of a closed payment's workflow from the stored payment (activities/reopen.py)."""

    async def start(self, payment_id: str) -> WorkflowHandle[Any, Any] | None:
        """A running workflow for the payment; None when the store does not know it."""
        ...

    async def signal(self, payment_id: str, event: GatewayEvent) -> WorkflowHandle[Any, Any] | None:
        """`event` delivered to the payment, in a run started for it if none is open."""
        ...


class GatewayProfiles(Protocol):
    def get(self, gateway_id: str) -> GatewayProfile | None: ...


class RateLimiter(Protocol):
    async def hit(self, key: str, window_s: int, limit: int) -> tuple[bool, float]:
        """Count one hit on `key`; (allowed, seconds until the next hit would be allowed)."""
        ...


@dataclass(frozen=True)
class RateLimit:
    """At most `limit` requests per `window_s` seconds, per API key (merchant API), per gateway
    and sender address (webhooks), or payment attempts per order, customer or customer IP."""

    limit: int
    window_s: int = 60


@dataclass(frozen=True)
class ApiDeps:
    client: Client
    task_queue: str
    api_keys: Mapping[str, SecretStr]  # key id -> bearer secret
    payments: PaymentReader
    provider_refs: ProviderRefIndex
    webhooks: WebhookGateways
    inbox: WebhookInbox
    profiles: GatewayProfiles
    # The settings a payment in a currency starts with (thresholds are read in that currency).
    settings_for: Callable[[str], PaymentSettings] = lambda currency: PaymentSettings()
    default_gateway: str = "mock"
    # Currencies this deployment accepts at all; a gateway's profile narrows it further.
    supported_currencies: frozenset[str] = frozenset({"USD", "EUR", "GBP", "CNY", "JPY"})
    max_body_bytes: int = 64 * 1024
    rate_limiter: RateLimiter | None = None
    api_rate_limit: RateLimit = RateLimit(limit=600)
    webhook_rate_limit: RateLimit = RateLimit(limit=6000)
    # New payments (a replay of one is not a new attempt), against card testing and retry storms.
    order_attempt_limit: RateLimit = RateLimit(limit=5, window_s=3600)
    customer_attempt_limit: RateLimit = RateLimit(limit=10, window_s=3600)
    ip_attempt_limit: RateLimit = RateLimit(limit=20, window_s=3600)  # the customer's, as sent
    # How long POST /v1/payments waits for a decision before it answers 202 with the payment as it
    # stands (a provider that is slow to answer); the payment itself goes on either way.
    decide_timeout_s: float = 30.0
    # How long POST /actions/complete waits for the payment to leave `authorizing` before it
    # answers 202 and leaves the rest to polling or the merchant's own webhook.
    action_complete_wait_s: float = 5.0
    # GET /metrics (Prometheus; api/metrics.py), without an API key.
    serve_metrics: bool = False
    # The payload codec the client encrypts with: served at /codec for the Temporal UI and CLI
    # (api/codec_server.py) to browsers of these origins.
    codec: PayloadCodec | None = None
    codec_cors_origins: frozenset[str] = frozenset()
    # GET /v1/events and redelivery (api/events.py); None: the routes answer 404.
    events: MerchantEventLog | None = None
    # A refund or a provider event for a payment whose workflow has closed; None: 409
    # `payment_closed` and `unknown_payment`.
    reopener: PaymentReopener | None = None
