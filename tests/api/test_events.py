"""The events API and merchant webhooks end to end: a payment through the API, its events delivered
to a local merchant endpoint (verified with the `standardwebhooks` library), listed newest first
with cursor pagination, read with their delivery attempts, and redelivered under the same id."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import AsyncIterator

import pytest_asyncio
from pydantic import SecretStr
from standardwebhooks.webhooks import Webhook

from tests.stack import Stack, running_stack
from workers.merchant_endpoint import LocalMerchantEndpoint

SECRET = SecretStr("whsec_" + base64.b64encode(os.urandom(32)).decode())
PROBLEM = "application/problem+json"


@pytest_asyncio.fixture
async def merchant() -> AsyncIterator[LocalMerchantEndpoint]:
    async with LocalMerchantEndpoint(SECRET) as endpoint:
        yield endpoint


@pytest_asyncio.fixture
async def stack(temporal_env, task_queue, sqlite_url, merchant) -> AsyncIterator[Stack]:
    overrides = {
        "merchant_webhooks": {"url": merchant.url, "secret": SECRET.get_secret_value()},
        # Closes once paid: the test ends with nothing left running.
        "payment": {"settlement_window_seconds": 0, "payment_window_seconds": 0},
    }
    async with running_stack(
        temporal_env.client, task_queue=task_queue, db_url=sqlite_url, config_overrides=overrides
    ) as running:
        yield running


async def _until(check, timeout: float = 15.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not (value := await check()):
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)
    return value


async def test_a_payment_s_events_are_delivered_listed_and_redelivered(stack, merchant, unique):
    async with stack.http() as http:
        body = {
            "order_id": f"order-{unique}",
            "amount": "49.99",
            "currency": "USD",
            "payment_method": {"type": "card", "token": "tok_visa"},
        }
        created = await http.post("/v1/payments", json=body, headers=stack.headers(unique))
        assert created.status_code == 201, created.text
        payment_id = created.json()["id"]
        refund = await http.post(
            f"/v1/payments/{payment_id}/refunds",
            json={"amount": "5.00"},
            headers=stack.headers(f"{unique}-r"),
        )
        assert refund.status_code == 201, refund.text

        async def all_three():
            return len(merchant.types_for(payment_id)) == 3

        await _until(all_three)
        assert merchant.types_for(payment_id) == ["payment.captured", "payment.succeeded", "refund.succeeded"]
        verifier = Webhook(SECRET.get_secret_value())
        for received in merchant.received:
            assert verifier.verify(received.body, dict(received.headers))["type"] in (
                "payment.captured",
                "payment.succeeded",
                "refund.succeeded",
            )

        listed = await http.get("/v1/events", params={"payment_id": payment_id}, headers=stack.headers())
        assert listed.status_code == 200
        page = listed.json()
        assert (page["object"], page["has_more"]) == ("list", False)
        assert [e["type"] for e in page["data"]] == [
            "refund.succeeded",
            "payment.succeeded",
            "payment.captured",
        ]
        assert page["data"][0]["data"]["refund"]["amount"] == "5.00"
        assert page["data"][0]["data"]["amount_refunded"] == "5.00"

        first = await http.get(
            "/v1/events", params={"payment_id": payment_id, "limit": 2}, headers=stack.headers()
        )
        rest = await http.get(
            "/v1/events",
            params={"payment_id": payment_id, "limit": 2, "starting_after": first.json()["data"][-1]["id"]},
            headers=stack.headers(),
        )
        assert first.json()["has_more"] and not rest.json()["has_more"]
        assert [e["id"] for e in first.json()["data"] + rest.json()["data"]] == [
            e["id"] for e in page["data"]
        ]
        by_type = await http.get(
            "/v1/events",
            params={"type": "refund.succeeded", "payment_id": payment_id},
            headers=stack.headers(),
        )
        assert [e["type"] for e in by_type.json()["data"]] == ["refund.succeeded"]

        event_id = page["data"][-1]["id"]
        one = (await http.get(f"/v1/events/{event_id}", headers=stack.headers())).json()
        assert one["delivery_status"] == "delivered"
        [attempt] = one["attempts"]
        assert attempt["http_status"] == 200 and attempt["latency_ms"] >= 0 and attempt["attempted_at"]

        again = await http.post(f"/v1/events/{event_id}/redeliver", headers=stack.headers(f"{unique}-again"))
        assert again.status_code == 202

        async def redelivered():
            return merchant.ids().count(event_id) == 2

        await _until(redelivered)
        assert all(r.verified for r in merchant.received)

        async def two_attempts():
            event = (await http.get(f"/v1/events/{event_id}", headers=stack.headers())).json()
            return len(event["attempts"]) == 2 and event["delivery_status"] == "delivered"

        await _until(two_attempts)


async def test_bad_queries_and_unknown_events(stack):
    async with stack.http() as http:
        for params in (
            {"type": "payment.teleported"},
            {"limit": "0"},
            {"limit": "101"},
            {"starting_after": "x"},
            {"colour": "red"},
        ):
            answer = await http.get("/v1/events", params=params, headers=stack.headers())
            assert (answer.status_code, answer.headers["content-type"]) == (422, PROBLEM), params
        missing = "evt_" + "0" * 24
        assert (await http.get(f"/v1/events/{missing}", headers=stack.headers())).status_code == 404
        redeliver = await http.post(f"/v1/events/{missing}/redeliver", headers=stack.headers("k-missing"))
        assert redeliver.status_code == 404
        assert (await http.get("/v1/events")).status_code == 401
