"""A worker and the API in one process, sharing one `Runtime`: what `durapay dev`, `durapay demo`
and the end-to-end tests (tests/stack.py) run. Gateway metrics are served on `[worker] metrics_bind`
and the worker's /livez and /readyz on `[worker] health_bind` when set; the client given is used as
the runtime configures it (data converter and payload codec, tracing)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from temporalio.client import Client

from workers.api_server import start_api
from workers.config import DurapayConfig
from workers.health import serving_health
from workers.worker import (
    Runtime,
    build_worker,
    delivery_waker,
    serving_gateway_metrics,
    sweeping,
)


@dataclass(frozen=True)
class Services:
    config: DurapayConfig
    client: Client
    runtime: Runtime
    task_queue: str
    base_url: str
    gateway_metrics_url: str | None = None  # with [worker] metrics_bind
    health_url: str | None = None  # with [worker] health_bind


@asynccontextmanager
async def running_services(
    client: Client,
    config: DurapayConfig,
    *,
    task_queue: str | None = None,
    migrate_database: bool = True,
) -> AsyncIterator[Services]:
    """Migrate, start the worker, serve the API; on exit stop the API first (no new payments),
    then drain the worker, then close the runtime."""
    queue = task_queue or config.temporal.task_queue
    async with await Runtime.open(config, migrate_database=migrate_database) as runtime:
        client = runtime.client(client)
        waker = delivery_waker(client, runtime, queue)
        worker = await build_worker(client, config, runtime=runtime, task_queue=queue, waker=waker)
        async with (
            serving_gateway_metrics(config, runtime) as metrics_url,
            worker,
            sweeping(waker),
            serving_health(config.worker.health_bind, runtime.readiness(client, worker)) as health_url,
        ):
            api = await start_api(client, config, runtime, task_queue=queue)
            try:
                yield Services(config, client, runtime, queue, api.base_url, metrics_url, health_url)
            finally:
                await api.stop()
