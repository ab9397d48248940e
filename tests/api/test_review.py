"""`POST /v1/payments/{id}/review` end to end: the real API, a real worker on the dev server, the
SQL store and the mock gateway, with `review_threshold = 0` so that every payment the rules do not
block is held for review."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest_asyncio

from tests.stack import API_KEY_ID, Stack, running_stack

PROBLEM = "application/problem+json"
# A second key of the same merchant, without the ops scope: it pays, it does not review.
SHOP_KEY_ID, SHOP_KEY = "shop", "shop-key-" + uuid.uuid4().hex


@pytest_asyncio.fixture(scope="module")
async def review_stack(temporal_env, pg_url) -> AsyncIterator[Stack]:
    async with running_stack(
        temporal_env.client,
        task_queue=f"tq-api-review-{uuid.uuid4().hex[:8]}",
        db_url=pg_url,
        config_overrides={
            "fraud_detection": {"review_threshold": 0},
            "api": {"api_keys": {SHOP_KEY_ID: SHOP_KEY}},
            "api_key_scopes": {API_KEY_ID: ["payments:write", "payments:read", "ops"]},
        },
    ) as stack:
        yield stack


@pytest_asyncio.fixture
async def http(review_stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with review_stack.http() as client:
        yield client


async def held_payment(http: httpx.AsyncClient, stack: Stack, unique: str) -> dict:
    body = {
        "order_id": f"order-{unique}",
        "amount": "49.99",
        "currency": "USD",
        "payment_method": {"type": "card", "token": "tok_visa"},
    }
    response = await http.post("/v1/payments", json=body, headers=stack.headers(f"create-{unique}"))
    assert response.status_code == 202, response.text
    payment = response.json()
    assert payment["status"] == "requires_review"
    assert payment["review"]["decision"] is None and payment["review"]["deadline"]
    return payment


async def test_operator_approves_and_the_payment_is_captured(http, review_stack, unique):
    payment = await held_payment(http, review_stack, unique)
    response = await http.post(
        f"/v1/payments/{payment['id']}/review",
        json={"decision": "approve", "note": "called the customer"},
        headers=review_stack.headers(f"review-{unique}"),
    )
    assert response.status_code == 200, response.text
    approved = response.json()
    assert approved["status"] == "paid"
    assert approved["captured_amount"] == "49.99"
    assert approved["review"]["decision"] == "approve"
    assert approved["review"]["decided_by"] == API_KEY_ID
    assert approved["review"]["note"] == "called the customer"
    # The same request again (a retry) answers the same, and decides nothing twice.
    again = await http.post(
        f"/v1/payments/{payment['id']}/review",
        json={"decision": "approve", "note": "called the customer"},
        headers=review_stack.headers(f"review-{unique}"),
    )
    assert again.status_code == 200 and again.json()["status"] == "paid"


async def test_operator_rejects_and_the_payment_is_cancelled(http, review_stack, unique):
    payment = await held_payment(http, review_stack, unique)
    response = await http.post(
        f"/v1/payments/{payment['id']}/review",
        json={"decision": "reject"},
        headers=review_stack.headers(f"review-{unique}"),
    )
    assert response.status_code == 200, response.text
    rejected = response.json()
    assert rejected["status"] == "cancelled"
    assert rejected["failure"]["code"] == "rejected_in_review"
    # A second, different decision on a decided payment is a conflict.
    late = await http.post(
        f"/v1/payments/{payment['id']}/review",
        json={"decision": "approve"},
        headers=review_stack.headers(f"late-{unique}"),
    )
    assert late.status_code == 409 and late.headers["content-type"].startswith(PROBLEM)


async def test_bad_decisions_change_nothing(http, review_stack, unique):
    payment = await held_payment(http, review_stack, unique)
    path = f"/v1/payments/{payment['id']}/review"
    bad = await http.post(path, json={"decision": "maybe"}, headers=review_stack.headers(f"bad-{unique}"))
    assert bad.status_code in (400, 422) and bad.headers["content-type"].startswith(PROBLEM)
    unauthenticated = await http.post(path, json={"decision": "approve"}, headers={"Idempotency-Key": "x"})
    assert unauthenticated.status_code == 401
    no_ops = await http.post(
        path,
        json={"decision": "approve"},
        headers={"Authorization": f"Bearer {SHOP_KEY}", "Idempotency-Key": f"shop-{unique}"},
    )
    assert no_ops.status_code == 403 and no_ops.json()["code"] == "insufficient_scope"
    current = await http.get(f"/v1/payments/{payment['id']}", headers=review_stack.headers())
    assert current.json()["status"] == "requires_review"
