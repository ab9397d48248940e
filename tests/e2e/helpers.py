"""What the end-to-end suites share: a stack with one provider as the default gateway, requests to
the merchant API, waiting for the workflow to get somewhere, webhook deliveries and what the store
recorded.

Each suite keeps its own fake provider, request bodies and notifications: how providers differ is
what those suites are about.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx
from temporalio.client import Client

from activities.gateways.fake_server import post_to
from tests.stack import Stack, running_stack

# A check for `eventually`: None while the awaited thing has not happened yet.
Check = Callable[[], Awaitable[Any]]


@asynccontextmanager
async def gateway_stack(
    client: Client, gateway: str, section: Mapping[str, Any], *, db_url: str, **payment: Any
) -> AsyncIterator[Stack]:
    """durapay with `gateway` configured from its `section` and made the default, on a task queue of
    its own; `payment` sets further `[payment]` options (action timeout, status polling)."""
    overrides = {"payment": {"default_gateway": gateway, gateway: dict(section), **payment}}
    async with running_stack(
        client,
        task_queue=f"tq-{gateway}-e2e-{uuid.uuid4().hex[:8]}",
        db_url=db_url,
        config_overrides=overrides,
    ) as stack:
        yield stack


def wallet_payment(
    unique: str, wallet: str, flow: str, *, amount: str, description: str, **fields: Any
) -> dict[str, Any]:
    """A request body for a CNY wallet payment (AliPay, WeChat Pay) through that wallet's gateway."""
    return {
        "order_id": f"order-{unique}",
        "amount": amount,
        "currency": "CNY",
        "gateway": wallet,
        "payment_method": {"type": "wallet", "wallet": wallet, "flow": flow},
        "description": description,
        **fields,
    }


async def post(
    http: httpx.AsyncClient, stack: Stack, path: str, body: dict | None, key: str
) -> httpx.Response:
    """POST to the merchant API with `key` as the Idempotency-Key."""
    return await http.post(path, json=body, headers=stack.headers(key))


async def awaiting_customer(
    http: httpx.AsyncClient, stack: Stack, body: dict[str, Any], key: str
) -> dict[str, Any]:
    """Create a payment that waits for the customer (202 with a next action); returns its view."""
    created = await post(http, stack, "/v1/payments", body, key)
    assert created.status_code == 202, created.text
    return created.json()


async def payment_view(http: httpx.AsyncClient, stack: Stack, payment_id: str) -> dict[str, Any]:
    return (await http.get(f"/v1/payments/{payment_id}", headers=stack.headers())).json()


async def eventually(check: Check, timeout: float = 15.0) -> Any:
    """Poll `check` until it returns something other than None (or time runs out)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value is not None or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(0.1)


def until_status(http: httpx.AsyncClient, stack: Stack, payment_id: str, status: str) -> Check:
    """A check for `eventually`: the payment's view once it has `status`."""

    async def check() -> dict[str, Any] | None:
        view = await payment_view(http, stack, payment_id)
        return view if view["status"] == status else None

    return check


async def event_types(stack: Stack, payment_id: str) -> list[str]:
    return [event.type for event in await stack.store.events(payment_id)]


def until_event(stack: Stack, payment_id: str, event_type: str) -> Check:
    """A check for `eventually`: True once the store recorded `event_type` for the payment."""

    async def check() -> bool | None:
        return True if event_type in await event_types(stack, payment_id) else None

    return check


async def received_event_ids(stack: Stack, payment_id: str) -> list[str]:
    """The provider event ids of the webhooks the workflow applied to the payment, in order."""
    return [e.data["event_id"] for e in await stack.store.events(payment_id) if e.type == "webhook.received"]


async def notify(stack: Stack, gateway: str, headers: dict[str, str], body: bytes) -> tuple[int, str]:
    """Deliver a provider's notification to the stack's webhook receiver; (status, answer body)."""
    return await post_to(f"{stack.webhook_url}/{gateway}", headers, body)
