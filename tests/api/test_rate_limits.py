"""Payment attempt limits: per order, per customer and per customer IP, counted in the database so
that every API instance shares them, answered 429 with Retry-After. First the handler alone (the
limit is checked before anything starts), then two API instances over one PostgreSQL database with a
real worker behind them."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import httpx
import pytest_asyncio
from sqlalchemy import select
from temporalio.service import RPCError, RPCStatusCode

from activities.store.db import create_engine
from activities.store.tables import rate_limit_hits
from api.auth import DEFAULT_MERCHANT
from api.payments import derive_payment_id
from api.problems import PROBLEM_CONTENT_TYPE
from tests.api.fakes import API_KEY_ID as FAKE_KEY_ID
from tests.api.fakes import AUTH, CountingRateLimiter, make_deps, serve
from tests.stack import API_KEY_ID, Stack, running_stack
from workers.api_server import start_api
from workers.worker import Runtime
from workflows.client import workflow_id


def body(order: str, token: str = "tok_visa", **fields) -> dict:
    return {
        "order_id": order,
        "amount": "49.99",
        "currency": "USD",
        "payment_method": {"type": "card", "token": token},
        **fields,
    }


async def test_an_attempt_over_a_limit_is_refused_before_anything_starts():
    limiter = CountingRateLimiter()  # answers "retry in 2.5 s" when over
    limiter.hits["attempts:customer:default/cus_1"] = 1  # this customer's one attempt of the hour is used up
    # UnreachableTemporal (make_deps' default) fails the test if the request gets as far as Temporal.
    deps = make_deps(rate_limiter=limiter, limits={"customer_attempts_per_hour": 1})
    request = body("o-limited", customer_id="cus_1", customer_ip="2001:0db8:0000::0001")
    async with serve(deps) as base, aiohttp.ClientSession() as http:
        async with http.post(
            f"{base}/v1/payments", json=request, headers={**AUTH, "Idempotency-Key": "k1"}
        ) as resp:
            problem = await resp.json(content_type=None)
            assert (resp.status, resp.headers["Content-Type"], resp.headers["Retry-After"]) == (
                429,
                PROBLEM_CONTENT_TYPE,
                "3",
            )
    assert (problem["code"], problem["limit"]) == ("payment_attempts_exceeded", "customer")
    assert "At most 1 payment attempts per customer in 3600 s" in problem["detail"]
    # Every limit counted the attempt; the address in its canonical form, so spellings share a count.
    assert limiter.hits == {
        f"api:{FAKE_KEY_ID}": 1,
        "attempts:order:default/o-limited": 1,
        "attempts:customer:default/cus_1": 2,
        "attempts:ip:2001:db8::1": 1,
    }
    assert limiter.rounds == 1  # the three limits in one round of writes


async def test_invalid_requests_are_not_attempts():
    limiter = CountingRateLimiter()
    deps = make_deps(rate_limiter=limiter)
    async with serve(deps) as base, aiohttp.ClientSession() as http:
        async with http.post(
            f"{base}/v1/payments", json=body("o-1", amount="1.001"), headers={**AUTH, "Idempotency-Key": "k1"}
        ) as resp:
            assert resp.status == 422
    assert [key for key in limiter.hits if key.startswith("attempts:")] == []


# ------------------------------------------------------------------------------ two API instances, one database


@dataclass(frozen=True)
class TwoApis:
    stack: Stack
    urls: tuple[str, str]

    async def post(self, instance: int, request: dict, key: str) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.urls[instance % 2], timeout=30) as http:
            return await http.post("/v1/payments", json=request, headers=self.stack.headers(key))


@pytest_asyncio.fixture(scope="module")
async def apis(temporal_env, pg_url) -> AsyncIterator[TwoApis]:
    overrides = {
        "api": {
            "rate_limiting": True,
            # The order limit at its default (5); the others lowered to keep the test short.
            "customer_attempts_per_hour": 3,
            "ip_attempts_per_hour": 4,
        }
    }
    async with running_stack(
        temporal_env.client,
        task_queue=f"tq-rate-limits-{uuid.uuid4().hex[:8]}",
        db_url=pg_url,
        config_overrides=overrides,
    ) as stack:
        # A second API process: its own engine and gateway clients, the same database.
        async with await Runtime.open(stack.config) as second:
            other = await start_api(stack.client, stack.config, second, task_queue=stack.task_queue)
            try:
                yield TwoApis(stack, (stack.base_url, other.base_url))
            finally:
                await other.stop()


async def within_one_window(budget_s: float = 30, window_s: int = 3600) -> None:
    """Attempts are counted in fixed windows aligned on the epoch (PaymentStore.hit, on the wall
    clock): a test crossing a boundary would see its count start over halfway. Too close to the end
    of a window for the test's `budget_s`, wait for the next one to begin."""
    left = window_s - time.time() % window_s
    if left < budget_s:
        await asyncio.sleep(left + 0.1)


async def test_attempts_per_order_are_shared_by_every_instance(apis: TwoApis, unique: str):
    await within_one_window()
    order = f"order-{unique}"
    answers = [await apis.post(i, body(order, "tok_chargeDeclined"), f"{unique}-{i}") for i in range(6)]

    assert [a.status_code for a in answers] == [402] * 5 + [429]
    refused = answers[-1]
    assert refused.headers["content-type"] == PROBLEM_CONTENT_TYPE
    assert (refused.json()["code"], refused.json()["limit"]) == ("payment_attempts_exceeded", "order")
    assert 1 <= int(refused.headers["Retry-After"]) <= 3600
    # The refused attempt started nothing.
    handle = apis.stack.client.get_workflow_handle(
        workflow_id(derive_payment_id(DEFAULT_MERCHANT, f"{unique}-5"))
    )
    try:
        await handle.describe()
        raise AssertionError("a refused attempt started a workflow")
    except RPCError as exc:
        assert exc.status == RPCStatusCode.NOT_FOUND

    # Replaying an attempt already made (same key, same body) is not a new attempt, on either instance.
    for instance in (0, 1):
        replay = await apis.post(instance, body(order, "tok_chargeDeclined"), f"{unique}-0")
        assert (replay.status_code, replay.json()["id"]) == (402, answers[0].json()["id"])

    engine = create_engine(apis.stack.config.database.url.get_secret_value())
    try:
        async with engine.connect() as conn:
            count = await conn.scalar(
                select(rate_limit_hits.c.count).where(
                    rate_limit_hits.c.key == f"attempts:order:default/{order}"
                )
            )
    finally:
        await engine.dispose()
    assert count == 6  # one row, counted by both instances


async def test_attempts_per_customer_and_per_ip(apis: TwoApis, unique: str):
    await within_one_window()
    customer = f"cus_{unique}"
    by_customer = [
        await apis.post(i, body(f"order-{unique}-c{i}", customer_id=customer), f"{unique}-c{i}")
        for i in range(4)
    ]
    assert [a.status_code for a in by_customer] == [201, 201, 201, 429]
    assert by_customer[-1].json()["limit"] == "customer"

    address = f"2001:db8::{unique[:4]}:{unique[4:8]}"
    by_ip = [
        await apis.post(i, body(f"order-{unique}-i{i}", customer_ip=address), f"{unique}-i{i}")
        for i in range(5)
    ]
    assert [a.status_code for a in by_ip] == [201] * 4 + [429]
    assert by_ip[-1].json()["limit"] == "ip"
    # Another customer from another address is not held back by either.
    fresh = await apis.post(
        1,
        body(f"order-{unique}-x", customer_id=f"{customer}-2", customer_ip=f"2001:db8::{unique[8:12]}"),
        f"{unique}-x",
    )
    assert fresh.status_code == 201, fresh.text
