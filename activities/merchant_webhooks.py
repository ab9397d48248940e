"""Merchant webhooks as the Standard Webhooks specification defines them
(https://www.standardwebhooks.com): signing, the endpoint an event goes to, the delivery
activities `MerchantWebhooksWorkflow` (workflows/merchant_webhooks.py) calls, and the signal that
starts it once the store has recorded events.

Each request: `POST <url>`, body `{"type", "timestamp", "data"}` (the same bytes on every attempt),
headers `webhook-id` (the event id: the merchant's de-duplication key), `webhook-timestamp` (the
attempt, unix seconds) and `webhook-signature: v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`
where the key is the base64 part of the `whsec_...` secret. A 2xx within 10 s is a delivery.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from pydantic import SecretStr
from temporalio import activity
from temporalio.client import Client

from activities.store.repository import PaymentStore
from workflows import activity_names
from workflows.client import merchant_webhooks_workflow_id
from workflows.merchant_events import DeliveryAttempt, DeliveryStatus, MerchantEvent, MerchantEventType
from workflows.merchant_webhooks import DeliveryResult, MerchantDelivery, MerchantWebhooksWorkflow

log = logging.getLogger("durapay.merchant_webhooks")

SECRET_PREFIX = "whsec_"
DELIVERY_TIMEOUT_S = 10.0


class MerchantSecretError(ValueError):
    """A merchant webhook secret that is not `whsec_` followed by base64 of at least 24 bytes."""


def secret_key(secret: SecretStr) -> bytes:
    raw = secret.get_secret_value()
    if not raw.startswith(SECRET_PREFIX):
        raise MerchantSecretError(f"a merchant webhook secret starts with {SECRET_PREFIX!r}")
    try:
        key = base64.b64decode(raw.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error:
        raise MerchantSecretError("a merchant webhook secret is base64 after its prefix") from None
    if len(key) < 24:
        raise MerchantSecretError("a merchant webhook secret holds at least 24 random bytes")
    return key


def sign(secret: SecretStr, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(secret: SecretStr, headers: Mapping[str, str], body: bytes, *, tolerance_s: int = 300) -> bool:
    """What a merchant does with a delivery: the signature over exactly these bytes, by this
    secret, sent within `tolerance_s` of now (a replayed capture fails). Any `v1,` signature in
    the space-separated header may match (secret rotation sends several)."""
    try:
        msg_id = headers["webhook-id"]
        timestamp = int(headers["webhook-timestamp"])
        signatures = headers["webhook-signature"].split()
    except (KeyError, ValueError):
        return False
    if abs(time.time() - timestamp) > tolerance_s:
        return False
    expected = sign(secret, msg_id, timestamp, body)
    return any(hmac.compare_digest(expected, given) for given in signatures)


def body_of(event: MerchantEvent) -> bytes:
    payload = {"type": event.type.value, "timestamp": event.created_at.isoformat(), "data": event.data}
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


@dataclass(frozen=True)
class MerchantEndpoint:
    url: str
    secret: SecretStr
    enabled_events: frozenset[MerchantEventType] = frozenset(MerchantEventType)

    def wants(self, event_type: MerchantEventType) -> bool:
        return event_type in self.enabled_events


# Which endpoint a merchant's events go to (None: the merchant has none): its own, else the global
# one (workers/config.py DurapayConfig.merchant_endpoint).
EndpointFor = Callable[[str], MerchantEndpoint | None]


def first_status(event: MerchantEvent, endpoint_for: EndpointFor) -> DeliveryStatus:
    """Pending if an endpoint wants the event, else recorded only (the events API lists it)."""
    endpoint = endpoint_for(event.merchant_id)
    return DeliveryStatus.PENDING if endpoint and endpoint.wants(event.type) else DeliveryStatus.NOT_SENT


class DeliveryStarter:
    """Signals a payment's delivery workflow, starting it if it is not running."""

    def __init__(self, client: Client, task_queue: str) -> None:
        self._client = client
        self._task_queue = task_queue

    async def __call__(self, payment_id: str) -> None:
        await self._client.start_workflow(
            MerchantWebhooksWorkflow.run,
            MerchantDelivery(payment_id=payment_id),
            id=merchant_webhooks_workflow_id(payment_id),
            task_queue=self._task_queue,
            start_signal=MerchantWebhooksWorkflow.events_recorded.__name__,
        )


class DeliveryWaker:
    """Tells a payment's delivery workflow about recorded events without the payment waiting.

    `wake` returns at once: the signal-with-start (a few ms, tens at the 95th percentile on a
    loaded server) runs beside the payment instead of inside its transition. A wake lost with its
    process (killed between the store's commit and the signal) or refused by Temporal leaves the
    events pending in the store, where `sweep`, run at worker start and every few minutes, finds
    them and starts their delivery."""

    SWEEP_EVERY_S = 300.0
    # Older than this, an event nobody has tried to deliver was missed (a wake takes milliseconds).
    MISSED_AFTER = timedelta(minutes=1)

    def __init__(self, store: PaymentStore, start: DeliveryStarter) -> None:
        self._store = store
        self._start = start
        self._in_flight: set[asyncio.Task[None]] = set()

    def wake(self, payment_id: str) -> None:
        task = asyncio.get_running_loop().create_task(self._wake(payment_id))
        self._in_flight.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(self._in_flight.discard)

    async def _wake(self, payment_id: str) -> None:
        try:
            await self._start(payment_id)
        except Exception as exc:  # the sweep starts it later; the payment must not notice
            log.warning("waking the webhook delivery of %s failed (%s); the sweep will", payment_id, exc)

    async def sweep(self, now: datetime | None = None) -> int:
        """Start the delivery of every payment whose pending events were missed; how many."""
        cutoff = (now or datetime.now(UTC)) - self.MISSED_AFTER
        missed = await self._store.payments_awaiting_delivery(cutoff)
        for payment_id in missed:
            await self._start(payment_id)
        if missed:
            log.info("started the webhook delivery of %d payment(s) whose wake was lost", len(missed))
        return len(missed)

    async def sweep_forever(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception as exc:  # the database or Temporal is away: next round
                log.warning("merchant webhook sweep failed: %s", exc)
            await asyncio.sleep(self.SWEEP_EVERY_S)

    async def drain(self) -> None:
        """Let wakes under way finish (a worker stopping gracefully)."""
        if self._in_flight:
            await asyncio.wait(list(self._in_flight), timeout=5)


class MerchantWebhookActivities:
    def __init__(self, store: PaymentStore, endpoint_for: EndpointFor) -> None:
        self._store = store
        self._endpoint_for = endpoint_for
        self._session: aiohttp.ClientSession | None = None

    @activity.defn(name=activity_names.PENDING_MERCHANT_EVENTS)
    async def pending(self, payment_id: str) -> list[str]:
        return await self._store.pending_merchant_events(payment_id)

    @activity.defn(name=activity_names.DELIVER_MERCHANT_EVENT)
    async def deliver(self, event_id: str) -> DeliveryResult:
        event = await self._store.merchant_event(event_id)
        if event is None or event.delivery_status is not DeliveryStatus.PENDING:
            return DeliveryResult(done=True)  # delivered meanwhile (a retried activity), or gone
        endpoint = self._endpoint_for(event.merchant_id)
        if endpoint is None or not endpoint.wants(event.type):
            await self._store.set_delivery_status(event_id, DeliveryStatus.NOT_SENT)
            return DeliveryResult(done=True)
        attempt = await self._post(endpoint, event)
        delivered = attempt.http_status is not None and 200 <= attempt.http_status < 300
        await self._store.record_delivery_attempt(event_id, attempt, delivered)
        return DeliveryResult(done=delivered)

    @activity.defn(name=activity_names.GIVE_UP_MERCHANT_EVENT)
    async def give_up(self, event_id: str) -> None:
        await self._store.set_delivery_status(event_id, DeliveryStatus.FAILED)

    async def _post(self, endpoint: MerchantEndpoint, event: MerchantEvent) -> DeliveryAttempt:
        body = body_of(event)
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "webhook-id": event.id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(endpoint.secret, event.id, timestamp, body),
        }
        attempted_at = datetime.now(UTC)
        # Redirects are not followed: a 3xx is not a delivery.
        started = time.monotonic()
        status: int | None = None
        error: str | None = None
        try:
            post = self._http().post(endpoint.url, data=body, headers=headers, allow_redirects=False)
            async with post as response:
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            error = (type(exc).__name__ + ": " + str(exc))[:255]
        latency_ms = round((time.monotonic() - started) * 1000)
        return DeliveryAttempt(
            attempted_at=attempted_at, http_status=status, latency_ms=latency_ms, error=error
        )

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            timeout = aiohttp.ClientTimeout(total=DELIVERY_TIMEOUT_S)
            self._session = aiohttp.ClientSession(timeout=timeout)
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    def definitions(self) -> list[Callable[..., Any]]:
        return [self.pending, self.deliver, self.give_up]
