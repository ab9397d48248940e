"""The whole of durapay in the test process, for end-to-end tests: migrations, a real worker on the
test's task queue and the real API on 127.0.0.1:<ephemeral port>, over a real Temporal server.

    async with running_stack(temporal_env.client, task_queue=task_queue, db_url=sqlite_url,
                             config_overrides={"payment": {"stripe": {...}}}) as stack:
        async with stack.http() as http:
            response = await http.post("/v1/payments", json=body, headers=stack.headers("key-1"))

or, in a test module, `from tests.stack import stack  # noqa: F401` and take the `stack` fixture
(SQLite database, mock gateway, defaults).

Configuration starts from `STACK_DEFAULTS` (the mock gateway enabled with a fresh webhook secret, a
fresh API key, port 0, rate limiting off) and deep-merges `config_overrides` over it; the process
environment and any ./durapay.toml are ignored, so a developer's settings never leak into a test.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest_asyncio
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.gateways.base import Gateway
from activities.gateways.registry import GatewayRegistry
from activities.store.repository import PaymentStore
from workers.config import DurapayConfig, load_config
from workers.services import running_services

API_KEY_ID = "test"


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def stack_defaults(api_key: str) -> dict[str, Any]:
    return {
        "payment": {
            "default_gateway": "mock",
            "mock": {"enabled": True, "webhook_secret": secrets.token_hex(16)},
        },
        "api": {"host": "127.0.0.1", "port": 0, "api_keys": {API_KEY_ID: api_key}, "rate_limiting": False},
    }


@dataclass(frozen=True)
class Stack:
    base_url: str
    api_key: str  # the bearer secret of API key `API_KEY_ID`
    client: Client
    store: PaymentStore
    registry: GatewayRegistry
    config: DurapayConfig
    task_queue: str
    gateway_metrics_url: str | None = None  # with config_overrides {"worker": {"metrics_bind": ...}}
    health_url: str | None = None  # the worker's /livez and /readyz, with {"worker": {"health_bind": ...}}

    def headers(self, idempotency_key: str | None = None) -> dict[str, str]:
        """Authorization (and Idempotency-Key, which every POST needs) for the merchant API."""
        headers = {"Authorization": f"Bearer {self.api_key}"}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        return headers

    def http(self, **options: Any) -> httpx.AsyncClient:
        """An HTTP client for the API, base URL set; use as `async with stack.http() as http:`."""
        return httpx.AsyncClient(base_url=self.base_url, timeout=options.pop("timeout", 30.0), **options)

    def gateway(self, gateway_id: str) -> Gateway:
        return self.registry.get(gateway_id)

    @property
    def webhook_url(self) -> str:
        return f"{self.base_url}/webhooks"


@asynccontextmanager
async def running_stack(
    client: Client,
    *,
    task_queue: str,
    db_url: str,
    config_overrides: Mapping[str, Any] | None = None,
) -> AsyncIterator[Stack]:
    api_key = secrets.token_urlsafe(24)
    overrides = deep_merge(stack_defaults(api_key), config_overrides or {})
    overrides = deep_merge(overrides, {"database": {"url": db_url}, "temporal": {"task_queue": task_queue}})
    config = load_config(environ={}, use_default_file=False, overrides=overrides)
    async with running_services(client, config, task_queue=task_queue) as services:
        yield Stack(
            base_url=services.base_url,
            api_key=config.api.api_keys[API_KEY_ID].get_secret_value(),
            client=services.client,  # the given connection, with the configured payload codec
            store=services.runtime.store,
            registry=services.runtime.registry,
            config=config,
            task_queue=task_queue,
            gateway_metrics_url=services.gateway_metrics_url,
            health_url=services.health_url,
        )


@pytest_asyncio.fixture
async def stack(temporal_env: WorkflowEnvironment, task_queue: str, sqlite_url: str) -> AsyncIterator[Stack]:
    async with running_stack(temporal_env.client, task_queue=task_queue, db_url=sqlite_url) as running:
        yield running
