"""The worker process: `PaymentWorkflow` plus every activity, wired to the configured store,
gateways, order ledger and fraud rules.

`Runtime` holds the I/O objects a process builds once from its configuration (database engine,
store, gateway registry, payload codec, gateway metrics, ...); the worker and the API server both take
one, so a process that runs both (`durapay dev`, tests/stack.py) shares a single engine and a single set
of gateway clients.

Observability, all off by default: `[temporal] metrics_bind` exports the Temporal SDK's metrics from
`durapay worker` (a Temporal `Runtime` with a Prometheus exporter); `[worker] metrics_bind` serves the
gateway and payment metrics (activities/metrics.py) from whichever process runs the worker. With
`[temporal] codec_keys`, every client built here encrypts payloads (workers/codec.py). The
connection's TLS, mTLS and API key come from `[temporal]` (workers/temporal_tls.py); with
`[telemetry] otlp_endpoint`, the runtime traces (workers/telemetry.py) and its clients carry the
tracing interceptor; `[worker] health_bind` serves /livez and /readyz (workers/health.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

from prometheus_client import start_http_server
from pydantic import ValidationError
from sqlalchemy import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.contrib.pydantic import PydanticPayloadConverter, pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes
from temporalio.runtime import PrometheusConfig, TelemetryConfig
from temporalio.runtime import Runtime as TemporalRuntime
from temporalio.worker import Worker

from activities.customers import CustomerActivities
from activities.event_verification import EventVerification
from activities.fraud import FraudActivities, FraudSettings
from activities.fraud_providers.activities import FraudScreeningActivities
from activities.fraud_providers.base import FraudProvider
from activities.fraud_providers.registry import build_providers, close_providers
from activities.gateway_activities import GatewayActivities
from activities.gateways.base import GatewayConfigError
from activities.gateways.registry import GatewayRegistry
from activities.merchant_webhooks import DeliveryStarter, DeliveryWaker, MerchantWebhookActivities
from activities.metrics import GatewayMetrics, PaymentMetrics
from activities.orders import OrderActivities, SqlOrderLedger
from activities.reconciliation import ReconciliationActivities
from activities.reopen import Reopener
from activities.routing.activity import RoutingActivities
from activities.routing.health import GatewayHealth
from activities.routing.rules import RoutingSettings
from activities.store.customers import CustomerStore
from activities.store.db import create_engine, migrate
from activities.store.repository import PaymentStore
from activities.store_activities import StoreActivities
from workers.codec import AesGcmCodec, decode_key
from workers.config import ConfigError, DurapayConfig, parse_bind
from workers.health import Readiness, database_probe, serving_health, temporal_probe, worker_probe
from workers.logging_setup import MerchantLogContext
from workers.telemetry import Tracing
from workers.temporal_tls import client_security
from workers.workflow_runner import workflow_runner
from workflows.customers import DetachPaymentMethodWorkflow, SavePaymentMethodWorkflow
from workflows.domain import GatewayProfile
from workflows.merchant_webhooks import MerchantWebhooksWorkflow
from workflows.payment import PaymentWorkflow
from workflows.reconciliation import ReconciliationWorkflow

log = logging.getLogger("durapay.worker")


def fraud_settings(config: DurapayConfig) -> FraudSettings:
    try:
        return FraudSettings.model_validate(config.fraud_detection)
    except ValidationError as exc:
        problems = "; ".join(
            f"fraud_detection.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            for e in exc.errors(include_input=False, include_url=False)
        )
        raise ConfigError(f"invalid configuration: {problems}") from None


def routing_settings(config: DurapayConfig, registry: GatewayRegistry) -> RoutingSettings:
    """`[payment.routing]`, whose candidates must be enabled gateways."""
    try:
        settings = RoutingSettings.model_validate(config.payment.routing)
    except ValidationError as exc:
        problems = "; ".join(
            f"payment.routing.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            for e in exc.errors(include_input=False, include_url=False)
        )
        raise ConfigError(f"invalid configuration: {problems}") from None
    for number, rule in enumerate(settings.rules, 1):
        unknown = [g for g in rule.gateways if g not in registry]
        if unknown:
            raise ConfigError(
                f"payment.routing rule {number}: {', '.join(unknown)} is not an enabled gateway"
            )
    return settings


def gateway_registry(config: DurapayConfig) -> GatewayRegistry:
    """The enabled gateways; the default gateway must be one of them."""
    try:
        registry = GatewayRegistry.from_config(config.payment.gateways)
    except GatewayConfigError as exc:
        raise ConfigError(f"invalid gateway configuration: {exc.message}") from None
    if config.payment.default_gateway not in registry:
        enabled = ", ".join(registry.ids()) or "none"
        raise ConfigError(
            f"payment.default_gateway {config.payment.default_gateway!r} is not an enabled gateway "
            f"(enabled: {enabled}); add [payment.{config.payment.default_gateway}] enabled = true"
        )
    return registry


def ensure_sqlite_directory(url: str) -> None:
    """SQLite creates the file but not its directory (the default lives under .durapay/)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


def payload_codec(config: DurapayConfig) -> AesGcmCodec | None:
    """The configured payload codec, or None when `[temporal] codec_keys` is empty."""
    temporal = config.temporal
    if not temporal.codec_keys or temporal.codec_active_key is None:
        return None  # the config allows no active key without keys, nor keys without one
    keys = {key_id: decode_key(key.get_secret_value()) for key_id, key in temporal.codec_keys.items()}
    return AesGcmCodec(keys, temporal.codec_active_key)


def data_converter(codec: AesGcmCodec | None) -> DataConverter:
    """The pydantic converter every durapay payload needs, encrypting with `codec` when there is one:
    payloads, and failure messages and stack traces too (a provider's error text may quote the
    customer). Failure types stay readable: the workflow and the API branch on them."""
    if codec is None:
        return pydantic_data_converter
    return replace(
        pydantic_data_converter,
        payload_codec=codec,
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


def with_data_converter(client: Client, converter: DataConverter) -> Client:
    """`client`'s connection with `converter`, for a client made elsewhere (a test's server, the
    dev stack's) that must read and write exactly what this configuration's processes do."""
    config = client.config()  # a copy: the client's own is untouched
    config["data_converter"] = converter
    return Client(**config)


async def prepare_database(config: DurapayConfig) -> None:
    url = config.database.url.get_secret_value()
    ensure_sqlite_directory(url)
    await migrate(url)


@dataclass
class Runtime:
    """What one process builds from its configuration and closes on the way out."""

    config: DurapayConfig
    engine: AsyncEngine
    store: PaymentStore
    registry: GatewayRegistry
    ledger: SqlOrderLedger
    fraud: FraudSettings
    codec: AesGcmCodec | None = None
    gateway_metrics: GatewayMetrics = field(default_factory=GatewayMetrics)
    # Clients of the screening services configured under [fraud_detection.<provider>].
    fraud_providers: dict[str, FraudProvider] = field(default_factory=dict)
    routing: RoutingSettings = field(default_factory=RoutingSettings)
    # Holds the HTTP session merchant webhooks are sent with.
    merchant_webhooks: MerchantWebhookActivities = field(init=False)

    tracing: Tracing | None = None
    # Served with the gateway metrics, from the same registry.
    payment_metrics: PaymentMetrics = field(init=False)
    # The routing circuits: they hear every gateway call outcome the metrics count.
    gateway_health: GatewayHealth = field(init=False)

    def __post_init__(self) -> None:
        self.merchant_webhooks = MerchantWebhookActivities(self.store, self.config.merchant_endpoint)
        self.payment_metrics = PaymentMetrics(self.gateway_metrics.registry)
        self.gateway_health = GatewayHealth(self.routing.circuit)
        self.gateway_metrics.health = self.gateway_health

    @classmethod
    async def open(cls, config: DurapayConfig, *, migrate_database: bool = False) -> Runtime:
        """Validate what the config left raw (gateways, fraud rules) before touching anything,
        then connect. `migrate_database` for single-process setups (dev, tests); a deployment
        runs `durapay migrate` once per release instead."""
        fraud = fraud_settings(config)
        codec = payload_codec(config)
        registry = gateway_registry(config)
        url = config.database.url.get_secret_value()
        try:
            routing = routing_settings(config, registry)
            if migrate_database:
                await prepare_database(config)
            engine = create_engine(url)
        except BaseException:
            await registry.aclose()
            raise
        store = PaymentStore(engine)
        tracing = Tracing.start(config.telemetry)
        return cls(
            config,
            engine,
            store,
            registry,
            SqlOrderLedger(engine),
            fraud,
            codec,
            tracing=tracing,
            fraud_providers=build_providers(fraud),
            routing=routing,
        )

    def client(self, client: Client) -> Client:
        """`client`'s connection as this runtime's processes use it: the configured data converter
        (payload codec included) and, when tracing, the tracing interceptor."""
        client = with_data_converter(client, data_converter(self.codec))
        return self.tracing.traced(client) if self.tracing is not None else client

    def readiness(self, client: Client, worker: Worker | None = None) -> Readiness:
        probes = {"database": database_probe(self.engine), "temporal": temporal_probe(client)}
        if worker is not None:
            probes["worker"] = worker_probe(worker)
        return Readiness(probes)

    @property
    def customers(self) -> CustomerStore:
        return CustomerStore(self.engine)  # stateless over the engine: cheap to make per use

    async def aclose(self) -> None:
        await close_providers(self.fraud_providers)
        await self.registry.aclose()
        await self.merchant_webhooks.aclose()
        await self.engine.dispose()
        if self.tracing is not None:
            # The exporter's flush blocks on HTTP: not on the loop.
            await asyncio.to_thread(self.tracing.shutdown)

    async def __aenter__(self) -> Runtime:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def activities(runtime: Runtime, waker: DeliveryWaker) -> list[Callable[..., Any]]:
    store = StoreActivities(
        runtime.store,
        runtime.payment_metrics,
        endpoint_for=runtime.config.merchant_endpoint,
        wake_delivery=waker.wake,
    )
    return [
        *GatewayActivities(runtime.registry, runtime.gateway_metrics).definitions(),
        *OrderActivities(runtime.ledger).definitions(),
        *FraudActivities(runtime.store, runtime.fraud).definitions(),
        *FraudScreeningActivities(runtime.fraud_providers).definitions(),
        *RoutingActivities(
            runtime.routing, runtime.registry.profiles(), runtime.gateway_health
        ).definitions(),
        *store.definitions(),
        *runtime.merchant_webhooks.definitions(),
        *EventVerification(runtime.config.event_proof.event_keys()).definitions(),
        *CustomerActivities(runtime.customers, runtime.registry).definitions(),
    ]


def payment_reopener(client: Client, runtime: Runtime, task_queue: str) -> Reopener:
    """Refunds and provider events for payments whose workflow has closed (activities/reopen.py)."""

    def profile_for(gateway_id: str) -> GatewayProfile | None:
        return runtime.registry.get(gateway_id).profile if gateway_id in runtime.registry else None

    return Reopener(client, task_queue, runtime.store.get, profile_for, runtime.config.payment.settings_for)


def delivery_waker(client: Client, runtime: Runtime, task_queue: str) -> DeliveryWaker:
    return DeliveryWaker(runtime.store, DeliveryStarter(client, task_queue))


@asynccontextmanager
async def sweeping(waker: DeliveryWaker) -> AsyncIterator[None]:
    """Sweep for merchant events whose delivery was never woken while the block runs (see
    `DeliveryWaker`): once now, then every few minutes."""
    task = asyncio.create_task(waker.sweep_forever())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await waker.drain()


@cache  # one exporter per address for the life of the process: it holds its port until exit
def _metrics_runtime(bind: str) -> TemporalRuntime:
    return TemporalRuntime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=bind)))


async def connect(
    config: DurapayConfig, *, export_sdk_metrics: bool = False, tracing: Tracing | None = None
) -> Client:
    """A Temporal client with the pydantic data converter every durapay payload needs, the
    configured payload codec, TLS / mTLS / API key, and `tracing`'s interceptor when given.
    `export_sdk_metrics` (the worker process): serve the SDK's metrics on `temporal.metrics_bind`,
    when set; other processes leave that port to the worker."""
    bind = config.temporal.metrics_bind if export_sdk_metrics else None
    security = client_security(config.temporal)  # a bad certificate fails here, by key name
    try:
        runtime = _metrics_runtime(bind) if bind is not None else None
    except ValueError as exc:  # the core could not start its exporter ("Address already in use")
        raise OSError(f"cannot serve Temporal metrics on {bind} (temporal.metrics_bind): {exc}") from None
    try:
        return await Client.connect(
            config.temporal.address,
            namespace=config.temporal.namespace,
            data_converter=data_converter(payload_codec(config)),
            runtime=runtime,
            tls=security.tls,
            api_key=security.api_key,
            interceptors=[tracing.interceptor] if tracing is not None else [],
        )
    except RuntimeError as exc:  # the SDK's connection failure, a failed TLS handshake included
        raise ConnectionError(
            f"cannot reach Temporal at {config.temporal.address} (temporal.address): {exc} "
            f"[{_connection_hint(config, str(exc))}]"
        ) from None


def _connection_hint(config: DurapayConfig, error: str) -> str:
    """What to check, from how the connection was made: the core's message names the TLS
    failure but not the durapay key behind it."""
    temporal = config.temporal
    if not temporal.uses_tls:
        return "plaintext; set [temporal] tls keys if the server requires TLS"
    if "InvalidCertificate" in error:
        return "TLS: the server's certificate was refused; check temporal.tls_ca_cert and tls_server_name"
    if temporal.tls_client_cert is None:
        return (
            "TLS without a client certificate; if the server requires mTLS, "
            "set temporal.tls_client_cert and tls_client_key"
        )
    return "TLS with a client certificate"


@asynccontextmanager
async def serving_gateway_metrics(config: DurapayConfig, runtime: Runtime) -> AsyncIterator[str | None]:
    """Serve `runtime`'s gateway metrics on `worker.metrics_bind` (port 0: an ephemeral one) while
    the block runs; yields the base URL, or None when not configured."""
    if config.worker.metrics_bind is None:
        yield None
        return
    host, port = parse_bind(config.worker.metrics_bind)
    try:
        server, thread = start_http_server(port, host, registry=runtime.gateway_metrics.registry)
    except OSError as exc:
        raise OSError(
            exc.errno,
            f"cannot serve gateway metrics on {host}:{port} ({exc.strerror}); set [worker] metrics_bind",
        ) from None
    try:
        bound_host = f"[{host}]" if ":" in host else host
        async with runtime.payment_metrics.watching_waiting(runtime.store):
            yield f"http://{bound_host}:{server.server_port}"
    finally:
        # shutdown() waits for the serving thread to notice (up to its poll interval): not on the loop.
        await asyncio.to_thread(server.shutdown)
        server.server_close()
        thread.join()


async def build_worker(
    client: Client,
    config: DurapayConfig,
    *,
    runtime: Runtime,
    task_queue: str | None = None,
    waker: DeliveryWaker | None = None,
) -> Worker:
    """The payment worker for `task_queue` (default `temporal.task_queue`). The caller runs it
    (`async with worker:` or `await worker.run()`) and closes `runtime` afterwards; with `waker`
    it also runs `sweeping(waker)` beside it."""
    if client.data_converter.payload_converter_class is not PydanticPayloadConverter:
        # The default converter turns pydantic models into dicts: the workflow would fail on
        # its first payload, far from this cause.
        raise ValueError("the client needs data_converter=pydantic_data_converter (see connect())")
    if isinstance(client.data_converter.payload_codec, AesGcmCodec) != (runtime.codec is not None):
        # Either customer data in the clear while [temporal] codec_keys says otherwise, or
        # histories encrypted under keys this configuration does not hold.
        raise ValueError("the client's payload codec does not match [temporal] codec_keys (see connect())")
    tuning = config.worker
    queue = task_queue or config.temporal.task_queue
    return Worker(
        client,
        task_queue=queue,
        workflows=[
            PaymentWorkflow,
            ReconciliationWorkflow,
            MerchantWebhooksWorkflow,
            SavePaymentMethodWorkflow,
            DetachPaymentMethodWorkflow,
        ],
        # Reconciliation repairs drift by signalling payment workflows, and recorded merchant
        # events start their delivery: hence the client.
        activities=[
            *activities(runtime, waker or delivery_waker(client, runtime, queue)),
            *ReconciliationActivities(
                runtime.store,
                runtime.registry,
                client,
                payment_reopener(client, runtime, queue),
                keys=runtime.config.event_proof.event_keys(),
            ).definitions(),
        ],
        max_concurrent_activities=tuning.max_concurrent_activities,
        max_concurrent_local_activities=tuning.max_concurrent_local_activities,
        max_concurrent_workflow_tasks=tuning.max_concurrent_workflow_tasks,
        max_cached_workflows=tuning.max_cached_workflows,
        workflow_runner=workflow_runner(),
        graceful_shutdown_timeout=timedelta(seconds=tuning.graceful_shutdown_seconds),
        interceptors=[MerchantLogContext()],
    )


async def wait_for_stop_signal() -> None:
    """Return on the first SIGINT or SIGTERM (Kubernetes stops pods with SIGTERM)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def run_worker(config: DurapayConfig) -> None:
    """`durapay worker`: poll the task queue until SIGINT/SIGTERM, then drain and exit."""
    async with await Runtime.open(config) as runtime:
        client = await connect(config, export_sdk_metrics=True, tracing=runtime.tracing)
        waker = delivery_waker(client, runtime, config.temporal.task_queue)
        worker = await build_worker(client, config, runtime=runtime, waker=waker)
        log.info(
            "worker polling %s on %s (namespace %s); gateways: %s%s",
            config.temporal.task_queue,
            config.temporal.address,
            config.temporal.namespace,
            ", ".join(runtime.registry.ids()),
            "; payloads encrypted" if runtime.codec is not None else "",
        )
        async with serving_gateway_metrics(config, runtime) as metrics_url:
            if metrics_url is not None:
                log.info("gateway metrics at %s/metrics", metrics_url)
            if config.temporal.metrics_bind is not None:
                log.info("Temporal SDK metrics at http://%s/metrics", config.temporal.metrics_bind)
            async with (
                worker,
                sweeping(waker),
                serving_health(config.worker.health_bind, runtime.readiness(client, worker)) as health_url,
            ):
                if health_url is not None:
                    log.info("health at %s/livez and %s/readyz", health_url, health_url)
                await wait_for_stop_signal()
                log.info(
                    "stopping: finishing in-flight tasks (up to %ss)", config.worker.graceful_shutdown_seconds
                )
