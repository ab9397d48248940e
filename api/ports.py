"""What the API needs from the rest of the system, as Protocols.

`api/` never imports `activities/`: the composition root (`workers/`) implements these ports with the
store, the gateway registry and the webhook inbox, and hands them over in an `ApiDeps`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from pydantic import SecretStr
from temporalio.client import Client, WorkflowHandle
from temporalio.converter import PayloadCodec

from api.limits import ApiLimits
from workflows.client import PaymentWorkflows
from workflows.customer_io import CustomerRecord, SavedMethodRecord
from workflows.domain import CaptureMethod, GatewayProfile, PaymentSettings, PaymentStatus, PaymentView
from workflows.event_proof import EventKeys
from workflows.gateway_io import GatewayEvent
from workflows.merchant_events import StoredMerchantEvent
from workflows.webhook_inbox import WebhookOutcome


class WebhookRejected(Exception):
    """A notification whose signature, timestamp or shape did not check out.

    workers/ raises it in place of activities' `WebhookVerificationError`; the message is logged,
    never sent back, so a forger learns nothing about which check failed."""


class StoreUnavailable(Exception):
    """The store did not answer: the database is down, restarting or unreachable.

    workers/ raises it in place of the database driver's connection errors, so that the API can
    answer 503 (retry with the same Idempotency-Key; providers send the webhook again) instead
    of a 500 that tells the caller something is broken for good."""


@dataclass(frozen=True)
class PaymentEvent:
    """One recorded event of a payment, as the store keeps it."""

    type: str
    version: int
    data: Mapping[str, str]
    created_at: datetime


class PaymentReader(Protocol):
    """The payments projection (the store)."""

    async def get(self, payment_id: str) -> PaymentView | None: ...

    async def recorded(self, payment_ids: Collection[str]) -> set[str]:
        """Which of `payment_ids` are stored: one read for several ids, no view."""
        ...

    async def page(
        self,
        merchant_id: str,
        *,
        status: PaymentStatus | None = None,
        gateway: str | None = None,
        order_id: str | None = None,
        customer_id: str | None = None,
        provider_payment_id: str | None = None,
        created_gte: datetime | None = None,
        created_lt: datetime | None = None,
        after: tuple[datetime, str] | None = None,
        limit: int = 10,
    ) -> tuple[list[PaymentView], bool]:
        """The merchant's payments matching every filter given, newest first, strictly after the
        `after` position; and whether more follow."""
        ...

    async def position(self, merchant_id: str, payment_id: str) -> tuple[datetime, str] | None:
        """`payment_id`'s place in the merchant's list (for `page(after=...)`); None if not theirs."""
        ...

    async def events(self, payment_id: str) -> list[PaymentEvent]: ...


class CustomerDirectory(Protocol):
    """Customers and their saved payment methods (the store); the workflows write the methods."""

    async def create_customer(self, customer: CustomerRecord) -> CustomerRecord:
        """Insert unless the id exists; the stored customer either way."""
        ...

    async def get_customer(self, customer_id: str) -> CustomerRecord | None: ...

    async def provider_customer(self, customer_id: str, gateway: str) -> str | None: ...

    async def get_method(self, method_id: str) -> SavedMethodRecord | None: ...

    async def list_methods(self, customer_id: str) -> list[SavedMethodRecord]: ...


class ProviderRefIndex(Protocol):
    """Finds our payment from the provider's id, for notifications that do not echo our reference."""

    async def payment_id_for_provider_ref(self, gateway: str, provider_payment_id: str) -> str | None: ...


class BankStatementImport(Protocol):
    """Imports a bank statement (camt.053 XML or CSV) for the bank transfer gateway: matches its
    credits to payments and confirms them (activities/bank_import.py). Answers the report as JSON."""

    async def import_statement(self, name: str, content: bytes) -> Mapping[str, Any]: ...


class WebhookGateways(Protocol):
    """The enabled gateways, seen from the webhook receiver."""

    def known(self, gateway_id: str) -> bool: ...

    async def parse(self, gateway_id: str, headers: Mapping[str, str], body: bytes) -> list[GatewayEvent]:
        """Verify the raw notification and normalize it; raises `WebhookRejected`. Awaited on the
        receiver's loop: a gateway whose verification waits for I/O awaits it, the others do not
        leave the loop at all."""
        ...

    def ack(self, gateway_id: str) -> tuple[int, bytes, str]:
        """(status, body, content type) the provider expects once its notification is handled."""
        ...

    def reject(self, gateway_id: str) -> tuple[int, bytes, str] | None:
        """(status, body, content type) the provider expects for a notification that did not
        verify, where it documents one; None: the receiver's own problem answer."""
        ...

    def challenge(self, gateway_id: str, query: Mapping[str, str]) -> tuple[int, bytes, str] | None:
        """The answer to the provider's endpoint check by GET; None when it sends none. Raises
        `WebhookRejected` for a malformed check."""
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
        self,
        merchant_id: str,
        *,
        payment_id: str | None,
        type: str | None,
        limit: int,
        starting_after: str | None,
    ) -> tuple[list[StoredMerchantEvent], bool]:
        """The merchant's events, newest first after the cursor event; (page, more follow)."""
        ...

    async def get(self, merchant_id: str, event_id: str) -> StoredMerchantEvent | None:
        """The event if it is the merchant's; None otherwise (no such event, or another's)."""
        ...

    async def redeliver(self, merchant_id: str, event_id: str) -> StoredMerchantEvent | None:
        """Queue the merchant's event for delivery again (with its id: the merchant
        de-duplicates) and wake its payment's delivery; None as for `get`."""
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

    async def hit_many(self, hits: Sequence[tuple[str, int, int]]) -> list[tuple[bool, float]]:
        """`hit` for each distinct (key, window_s, limit), answered in their order, in one round
        of writes."""
        ...


@dataclass(frozen=True)
class MerchantSettings:
    """What the API enforces per merchant ([merchants.<id>])."""

    allowed_gateways: frozenset[str] = frozenset()  # empty: every enabled gateway
    default_gateway: str | None = None  # None: the deployment's default gateway


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
    # What a payment request that names no capture_method gets ([payment] auto_capture).
    default_capture_method: CaptureMethod = CaptureMethod.AUTOMATIC
    # Currencies this deployment accepts at all; a gateway's profile narrows it further.
    supported_currencies: frozenset[str] = frozenset({"USD", "EUR", "GBP", "CNY", "JPY"})
    limits: ApiLimits = field(default_factory=ApiLimits)
    rate_limiter: RateLimiter | None = None  # None: no rate limits (benchmarks)
    # GET /metrics (Prometheus; api/metrics.py), without an API key.
    serve_metrics: bool = False
    # The payload codec the client encrypts with: served at /codec for the Temporal UI and CLI
    # (api/codec_server.py) to browsers of these origins.
    codec: PayloadCodec | None = None
    codec_cors_origins: frozenset[str] = frozenset()
    # Proves to the payment's workflow that the receiver verified an event (workflows/event_proof.py);
    # None: events go unproven and each one is confirmed by a gateway lookup.
    event_keys: EventKeys | None = None

    # GET /v1/events and redelivery (api/events.py); None: the routes answer 404.
    events: MerchantEventLog | None = None
    # A refund or a provider event for a payment whose workflow has closed; None: 409
    # `payment_closed` and `unknown_payment`.
    reopener: PaymentReopener | None = None
    # API key id -> its merchant / its scopes; a key missing here: `default`, payments:write+read.
    key_merchants: Mapping[str, str] = field(default_factory=dict)
    key_scopes: Mapping[str, frozenset[str]] = field(default_factory=dict)
    merchants: Mapping[str, MerchantSettings] = field(default_factory=dict)
    # None: no customers endpoints (404) and no saved-method payments.
    customers: CustomerDirectory | None = None
    # None: `POST /v1/bank_transfer/statements` answers 404 (no statement import wired).
    bank_statements: BankStatementImport | None = None

    @property
    def workflows(self) -> PaymentWorkflows:
        """The payments' workflows, through `client`."""
        return PaymentWorkflows(self.client)
