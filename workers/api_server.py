"""The API process: `api.app.create_app` over the store and the gateway registry.

`api/` never imports `activities/`; the adapters below implement its `api/ports.py` Protocols with
activities' objects, and translate their vocabulary (the gateways' `WebhookVerificationError`, the
database's connection errors) into the API's. Webhook outcomes need no translation: both sides
speak `workflows.webhook_inbox.WebhookOutcome`.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web
from sqlalchemy import exc as db_errors
from temporalio.client import Client

from activities.gateways.base import WebhookVerificationError
from activities.gateways.registry import GatewayRegistry
from activities.merchant_webhooks import DeliveryStarter
from activities.store.bank_statements import BankStatementStore
from activities.store.customers import CustomerStore
from activities.store.repository import PaymentStore
from api.app import AccessLogger, create_app
from api.ports import (
    ApiDeps,
    MerchantSettings,
    PaymentEvent,
    StoreUnavailable,
    WebhookRejected,
)
from workers.bank import StatementImporter
from workers.config import DurapayConfig
from workers.worker import (
    Runtime,
    connect,
    payment_reopener,
    wait_for_stop_signal,
)
from workflows.customer_io import CustomerRecord, SavedMethodRecord
from workflows.domain import GatewayProfile, PaymentView
from workflows.gateway_io import GatewayEvent
from workflows.merchant_events import DeliveryStatus, StoredMerchantEvent
from workflows.webhook_inbox import WebhookOutcome

log = logging.getLogger("durapay.api")


@contextmanager
def store_errors() -> Iterator[None]:
    """The database driver's "no connection" errors as the API's `StoreUnavailable`. Anything
    else (a constraint, a bug) stays what it is."""
    try:
        yield
    except (db_errors.OperationalError, db_errors.InterfaceError, db_errors.TimeoutError) as exc:
        # OperationalError: refused, reset or shut down connections; TimeoutError: no pooled one.
        raise StoreUnavailable(f"database unavailable ({type(exc).__name__})") from exc
    except db_errors.DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
        raise StoreUnavailable("database connection lost") from exc


class StorePorts:
    """`PaymentReader`, `ProviderRefIndex`, `WebhookInbox` and `RateLimiter` over `PaymentStore`."""

    def __init__(self, store: PaymentStore) -> None:
        self._store = store

    async def get(self, payment_id: str) -> PaymentView | None:
        with store_errors():
            return await self._store.get(payment_id)

    async def recorded(self, payment_ids: Collection[str]) -> set[str]:
        with store_errors():
            return await self._store.recorded(payment_ids)

    async def page(self, merchant_id: str, **filters: Any) -> tuple[list[PaymentView], bool]:
        with store_errors():
            return await self._store.page(merchant_id, **filters)

    async def position(self, merchant_id: str, payment_id: str) -> tuple[datetime, str] | None:
        with store_errors():
            return await self._store.position(merchant_id, payment_id)

    async def events(self, payment_id: str) -> list[PaymentEvent]:
        with store_errors():
            stored = await self._store.events(payment_id)
        return [
            PaymentEvent(type=e.type, version=e.version, data=e.data, created_at=e.created_at) for e in stored
        ]

    async def payment_id_for_provider_ref(self, gateway: str, provider_payment_id: str) -> str | None:
        with store_errors():
            return await self._store.payment_id_for_provider_ref(gateway, provider_payment_id)

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
        with store_errors():
            return await self._store.record_webhook(
                gateway, event_id, payment_id, verified, outcome, event_type
            )

    async def hit(self, key: str, window_s: int, limit: int) -> tuple[bool, float]:
        with store_errors():
            return await self._store.hit(key, window_s, limit)

    async def hit_many(self, hits: Sequence[tuple[str, int, int]]) -> list[tuple[bool, float]]:
        with store_errors():
            return list(await self._store.hit_many(hits))


class CustomerPorts:
    """`CustomerDirectory` over `CustomerStore`."""

    def __init__(self, store: CustomerStore) -> None:
        self._store = store

    async def create_customer(self, customer: CustomerRecord) -> CustomerRecord:
        with store_errors():
            return await self._store.create_customer(customer)

    async def get_customer(self, customer_id: str) -> CustomerRecord | None:
        with store_errors():
            return await self._store.get_customer(customer_id)

    async def provider_customer(self, customer_id: str, gateway: str) -> str | None:
        with store_errors():
            return await self._store.provider_customer(customer_id, gateway)

    async def get_method(self, method_id: str) -> SavedMethodRecord | None:
        with store_errors():
            return await self._store.get_method(method_id)

    async def list_methods(self, customer_id: str) -> list[SavedMethodRecord]:
        with store_errors():
            return await self._store.list_methods(customer_id)


def merchant_settings(config: DurapayConfig) -> dict[str, MerchantSettings]:
    return {
        merchant_id: MerchantSettings(
            allowed_gateways=frozenset(merchant.allowed_gateways), default_gateway=merchant.default_gateway
        )
        for merchant_id, merchant in config.merchants.items()
    }


class RegistryPorts:
    """`WebhookGateways` and `GatewayProfiles` over the gateway registry."""

    def __init__(self, registry: GatewayRegistry) -> None:
        self._registry = registry

    def known(self, gateway_id: str) -> bool:
        return gateway_id in self._registry

    async def parse(self, gateway_id: str, headers: Mapping[str, str], body: bytes) -> list[GatewayEvent]:
        try:
            return await self._registry.get(gateway_id).receive_webhook(headers, body)
        except WebhookVerificationError as exc:
            raise WebhookRejected(str(exc)) from None

    def ack(self, gateway_id: str) -> tuple[int, bytes, str]:
        ack = self._registry.get(gateway_id).webhook_ack()
        return ack.status, ack.body, ack.content_type

    def reject(self, gateway_id: str) -> tuple[int, bytes, str] | None:
        answer = self._registry.get(gateway_id).webhook_reject()
        return None if answer is None else (answer.status, answer.body, answer.content_type)

    def challenge(self, gateway_id: str, query: Mapping[str, str]) -> tuple[int, bytes, str] | None:
        try:
            answer = self._registry.get(gateway_id).webhook_challenge(query)
        except WebhookVerificationError as exc:
            raise WebhookRejected(str(exc)) from None
        return None if answer is None else (answer.status, answer.body, answer.content_type)

    def get(self, gateway_id: str) -> GatewayProfile | None:
        return self._registry.get(gateway_id).profile if gateway_id in self._registry else None


class EventPorts:
    """`MerchantEventLog` over `PaymentStore`; a redelivery wakes the payment's delivery workflow."""

    def __init__(self, store: PaymentStore, start_delivery: DeliveryStarter) -> None:
        self._store = store
        self._start_delivery = start_delivery

    async def list(
        self,
        merchant_id: str,
        *,
        payment_id: str | None,
        type: str | None,
        limit: int,
        starting_after: str | None,
    ) -> tuple[list[StoredMerchantEvent], bool]:
        with store_errors():
            return await self._store.list_merchant_events(
                merchant_id=merchant_id,
                payment_id=payment_id,
                type=type,
                limit=limit,
                starting_after=starting_after,
            )

    async def get(self, merchant_id: str, event_id: str) -> StoredMerchantEvent | None:
        with store_errors():
            event = await self._store.merchant_event(event_id)
        return event if event is not None and event.merchant_id == merchant_id else None

    async def redeliver(self, merchant_id: str, event_id: str) -> StoredMerchantEvent | None:
        if await self.get(merchant_id, event_id) is None:
            return None
        with store_errors():
            if not await self._store.set_delivery_status(event_id, DeliveryStatus.PENDING):
                return None
            event = await self._store.merchant_event(event_id)
        if event is not None:
            await self._start_delivery(event.payment_id)
        return event


def api_deps(
    client: Client, config: DurapayConfig, runtime: Runtime, *, task_queue: str | None = None
) -> ApiDeps:
    store = StorePorts(runtime.store)
    gateways = RegistryPorts(runtime.registry)
    payment = config.payment
    # The configured converter whatever the client came with: with a codec configured, the
    # API must not start payments whose customer data goes to Temporal in the clear.
    client = runtime.client(client)
    task_queue = task_queue or config.temporal.task_queue
    return ApiDeps(
        client=client,
        task_queue=task_queue,
        api_keys=dict(config.api.api_keys),
        payments=store,
        provider_refs=store,
        webhooks=gateways,
        inbox=store,
        profiles=gateways,
        settings_for=payment.settings_for,
        default_gateway=payment.default_gateway,
        default_capture_method=payment.default_capture_method,
        supported_currencies=frozenset(payment.supported_currencies),
        limits=config.api,  # an `ApiLimits`: [api] extends it
        rate_limiter=store if config.api.rate_limiting else None,
        serve_metrics=config.api.metrics,
        codec=runtime.codec,
        codec_cors_origins=frozenset(config.temporal.codec_origins),
        event_keys=config.event_proof.event_keys(),
        events=EventPorts(runtime.store, DeliveryStarter(client, task_queue)),
        reopener=payment_reopener(client, runtime, task_queue),
        key_merchants=config.merchant_of_key(),
        key_scopes=config.scopes_of_key(),
        merchants=merchant_settings(config),
        customers=CustomerPorts(runtime.customers),
        bank_statements=StatementImporter(BankStatementStore(runtime.engine), runtime.store, client),
    )


@dataclass
class RunningApi:
    runner: web.AppRunner
    base_url: str

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start_api(
    client: Client,
    config: DurapayConfig,
    runtime: Runtime,
    *,
    task_queue: str | None = None,
) -> RunningApi:
    """Serve the API on `api.host:api.port` (port 0: an ephemeral one) until `stop()`."""
    deps = api_deps(client, config, runtime, task_queue=task_queue)
    app = create_app(
        deps,
        readiness=runtime.readiness(deps.client),
        tracer=runtime.tracing.tracer if runtime.tracing is not None else None,
    )
    runner = web.AppRunner(app, access_log_class=AccessLogger, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, config.api.host, config.api.port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise OSError(
            exc.errno,
            f"cannot listen on {config.api.host}:{config.api.port} ({exc.strerror}); "
            "set [api] port or DURAPAY_API__PORT",
        ) from None
    host, port = runner.addresses[0][:2]
    return RunningApi(runner, f"http://{host}:{port}")


async def run_api(config: DurapayConfig) -> None:
    """`durapay api`: serve until SIGINT/SIGTERM."""
    if not config.api.api_keys:
        log.warning("no API keys configured: every /v1 request will be refused (set DURAPAY_API_KEYS)")
    async with await Runtime.open(config) as runtime:
        client = await connect(config, tracing=runtime.tracing)
        api = await start_api(client, config, runtime)
        log.info("API listening on %s (task queue %s)", api.base_url, config.temporal.task_queue)
        if config.api.metrics:
            log.info("metrics at %s/metrics", api.base_url)
        if runtime.codec is not None:
            log.info(
                "codec server at %s/codec for %s", api.base_url, ", ".join(config.temporal.codec_origins)
            )
        try:
            await wait_for_stop_signal()
        finally:
            await api.stop()
