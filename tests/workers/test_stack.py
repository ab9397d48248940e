"""tests/stack.py end to end: a payment through the real API, worker, workflow, store and mock."""

from __future__ import annotations

import asyncio

from tests.stack import Stack, stack
from workflows.client import workflow_id
from workflows.domain import PaymentStatus


async def test_a_payment_goes_through_the_whole_stack(stack: Stack, unique: str) -> None:
    body = {
        "order_id": f"order-{unique}",
        "currency": "USD",
        "amount": "49.99",
        "payment_method": {"type": "card", "token": "tok_visa"},
    }
    async with stack.http() as http:
        assert (await http.get("/healthz")).status_code == 200
        unauthorized = await http.post("/v1/payments", json=body, headers={"Idempotency-Key": unique})
        assert unauthorized.status_code == 401

        created = await http.post("/v1/payments", json=body, headers=stack.headers(unique))
        assert created.status_code == 201, created.text
        payment = created.json()
        assert payment["status"] == "paid"
        assert payment["captured_amount"] == "49.99"

        # The store's projection catches up with the workflow (a local activity per transition).
        for _ in range(50):
            stored = await stack.store.get(payment["id"])
            if stored is not None and stored.status is PaymentStatus.PAID:
                break
            await asyncio.sleep(0.1)
        assert stored is not None and stored.status is PaymentStatus.PAID
        assert stored.captured_minor == 4999

        fetched = await http.get(f"/v1/payments/{payment['id']}", headers=stack.headers())
        assert fetched.status_code == 200 and fetched.json()["status"] == "paid"
    description = await stack.client.get_workflow_handle(workflow_id(payment["id"])).describe()
    assert description.task_queue == stack.task_queue
