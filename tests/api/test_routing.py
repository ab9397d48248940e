"""Routing through the API: with `[payment.routing]` rules, a request naming no gateway is routed by
the worker and says where and why; a request naming its gateway is not."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest_asyncio

from tests.stack import Stack, running_stack


@pytest_asyncio.fixture(scope="module")
async def routing_stack(temporal_env, pg_url) -> AsyncIterator[Stack]:
    rules = {"rules": [{"currencies": ["USD"], "min_amount": "10.00", "gateways": ["mock"]}]}
    async with running_stack(
        temporal_env.client,
        task_queue=f"tq-api-routing-{uuid.uuid4().hex[:8]}",
        db_url=pg_url,
        config_overrides={"payment": {"routing": rules}},
    ) as stack:
        yield stack


@pytest_asyncio.fixture
async def http(routing_stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with routing_stack.http() as client:
        yield client


def body(unique: str, amount: str, **fields) -> dict:
    return {
        "order_id": f"order-{unique}",
        "amount": amount,
        "currency": "USD",
        "payment_method": {"type": "card", "token": "tok_visa"},
        **fields,
    }


async def test_a_request_naming_no_gateway_is_routed_and_says_why(http, routing_stack, unique):
    routed = await http.post(
        "/v1/payments", json=body(unique, "49.99"), headers=routing_stack.headers(unique)
    )
    assert routed.status_code == 201, routed.text
    assert routed.json()["gateway"] == "mock"
    assert routed.json()["routing"] == {"gateway": "mock", "reason": "rule 1: first candidate", "skipped": []}
    # Below the rule's range: the default gateway, and the record says so.
    small = await http.post(
        "/v1/payments", json=body(f"s{unique}", "5.00"), headers=routing_stack.headers(f"s{unique}")
    )
    assert small.json()["routing"]["reason"] == "no rule matched: default gateway"
    events = [e.type for e in await routing_stack.store.events(routed.json()["id"])]
    assert "payment.routed" in events


async def test_a_request_naming_its_gateway_is_not_routed(http, routing_stack, unique):
    named = await http.post(
        "/v1/payments", json=body(unique, "49.99", gateway="mock"), headers=routing_stack.headers(unique)
    )
    assert named.status_code == 201, named.text
    assert named.json()["routing"] is None
