"""The worker process: `PaymentWorkflow` plus every activity, wired to the configured store,
gateways, order ledger and fraud rules.

`Runtime` holds the I/O objects a process builds once from its configuration (database engine,
store, gateway registry, ...); the worker and the API server both take one, so a process that runs
both (`durapay dev`, tests/stack.py) shares a single engine and a single set of gateway clients.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.contrib.pydantic import PydanticPayloadConverter, pydantic_data_converter
from temporalio.worker import Worker

from activities.fraud import FraudActivities, FraudSettings
from activities.gateway_activities import GatewayActivities
from activities.gateways.base import GatewayConfigError
from activities.gateways.registry import GatewayRegistry
from activities.orders import OrderActivities, SqlOrderLedger
from activities.reconciliation import ReconciliationActivities
from activities.store.db import create_engine, migrate
from activities.store.repository import PaymentStore
from activities.store_activities import StoreActivities
from workers.config import ConfigError, DurapayConfig
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

    @classmethod
    async def open(cls, config: DurapayConfig, *, migrate_database: bool = False) -> Runtime:
        """Validate what the config left raw (gateways, fraud rules) before touching anything,
        then connect. `migrate_database` for single-process setups (dev, tests); a deployment
        runs `durapay migrate` once per release instead."""
        fraud = fraud_settings(config)
        registry = gateway_registry(config)
        url = config.database.url.get_secret_value()
        try:
            if migrate_database:
                await prepare_database(config)
            engine = create_engine(url)
        except BaseException:
            await registry.aclose()
            raise
        store = PaymentStore(engine)
        return cls(config, engine, store, registry, SqlOrderLedger(engine), fraud)

    async def aclose(self) -> None:
        await self.registry.aclose()
        await self.engine.dispose()

    async def __aenter__(self) -> Runtime:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def activities(runtime: Runtime) -> list[Callable[..., Any]]:
    return [
        *GatewayActivities(runtime.registry).definitions(),
        *OrderActivities(runtime.ledger).definitions(),
        *FraudActivities(runtime.store, runtime.fraud).definitions(),
        *StoreActivities(runtime.store).definitions(),
    ]


async def connect(config: DurapayConfig) -> Client:
    """A Temporal client with the pydantic data converter every durapay payload needs."""
    try:
        return await Client.connect(
            config.temporal.address,
            namespace=config.temporal.namespace,
            data_converter=pydantic_data_converter,
        )
    except RuntimeError as exc:  # the SDK's connection failure
        raise ConnectionError(
            f"cannot reach Temporal at {config.temporal.address} (temporal.address): {exc}"
        ) from None


async def build_worker(
    client: Client,
    config: DurapayConfig,
    *,
    runtime: Runtime,
    task_queue: str | None = None,
) -> Worker:
    """The payment worker for `task_queue` (default `temporal.task_queue`). The caller runs it
    (`async with worker:` or `await worker.run()`) and closes `runtime` afterwards."""
    if client.data_converter.payload_converter_class is not PydanticPayloadConverter:
        # The default converter turns pydantic models into dicts: the workflow would fail on
        # its first payload, far from this cause.
        raise ValueError("the client needs data_converter=pydantic_data_converter (see connect())")
    tuning = config.worker
    return Worker(
        client,
        task_queue=task_queue or config.temporal.task_queue,
        workflows=[PaymentWorkflow, ReconciliationWorkflow],
        # Reconciliation repairs drift by signalling payment workflows, hence the client.
        activities=[
            *activities(runtime),
            *ReconciliationActivities(runtime.store, runtime.registry, client).definitions(),
        ],
        max_concurrent_activities=tuning.max_concurrent_activities,
        max_concurrent_local_activities=tuning.max_concurrent_local_activities,
        max_concurrent_workflow_tasks=tuning.max_concurrent_workflow_tasks,
        max_cached_workflows=tuning.max_cached_workflows,
        graceful_shutdown_timeout=timedelta(seconds=tuning.graceful_shutdown_seconds),
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
        client = await connect(config)
        worker = await build_worker(client, config, runtime=runtime)
        log.info(
            "worker polling %s on %s (namespace %s); gateways: %s",
            config.temporal.task_queue,
            config.temporal.address,
            config.temporal.namespace,
            ", ".join(runtime.registry.ids()),
        )
        async with worker:
            await wait_for_stop_signal()
            log.info("stopping: finishing in-flight tasks (up to %ss)", config.worker.graceful_shutdown_seconds)
