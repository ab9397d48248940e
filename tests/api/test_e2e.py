"""The merchant API and the webhook receiver end to end: real HTTP against the real API, a real worker
running PaymentWorkflow on the Temporal dev server, the SQL store and the mock gateway.

One stack serves the whole module (each test has its own ids), so the suite stays in seconds.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest_asyncio
from temporalio.api.enums.v1 import EventType

from activities.gateways.mock.adapter import MockWebhook
from tests.stack import Stack, running_stack
from workflows.client import workflow_id
from workflows.domain import PaymentStatus
from workflows.gateway_io import GatewayEventKind
from workflows.webhook_inbox import WebhookOutcome

PROBLEM = "application/problem+json"


@pytest_asyncio.fixture(scope="module")
async def api_stack(temporal_env, pg_url) -> AsyncIterator[Stack]:
    # PostgreSQL, the production store: the end-to-end path runs on it (SQLite has its own tests).
    async with running_stack(
        temporal_env.client,
        task_queue=f"tq-api-e2e-{uuid.uuid4().hex[:8]}",
        db_url=pg_url,
    ) as stack:
        yield stack


@pytest_asyncio.fixture
async def http(api_stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with api_stack.http() as client:
        yield client


def payment(unique: str, token: str = "tok_visa", **fields) -> dict:
    return {
        "order_id": f"order-{unique}",
        "amount": "49.99",
        "currency": "USD",
        "payment_method": {"type": "card", "token": token},
        **fields,
    }


async def _post(
    http: httpx.AsyncClient, stack: Stack, path: str, body: dict | None, key: str
) -> httpx.Response:
    return await http.post(path, json=body, headers=stack.headers(key))


async def _eventually(check, timeout: float = 10.0):
    """Poll `check` (async, returns a value or None) until it returns something."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value is not None or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(0.05)


async def _at_least(count, n: int) -> int | None:
    value = await count
    return value if value >= n else None


async def _signals(stack: Stack, payment_id: str) -> int:
    count = 0
    async for event in stack.client.get_workflow_handle(workflow_id(payment_id)).fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            count += event.workflow_execution_signaled_event_attributes.signal_name == "gateway_event"
    return count


async def test_success_and_idempotent_replay(api_stack, http, unique):
    body = payment(unique)
    first = await _post(http, api_stack, "/v1/payments", body, unique)
    assert first.status_code == 201, first.text
    paid = first.json()
    assert paid["status"] == "paid"
    assert (paid["amount"], paid["captured_amount"], paid["refunded_amount"]) == ("49.99", "49.99", "0.00")
    assert paid["payment_method"] == {"type": "card"}
    assert paid["id"].startswith("pay_") and paid["provider_payment_id"]

    again = await _post(http, api_stack, "/v1/payments", body, unique)
    assert (again.status_code, again.json()["id"], again.json()["status"]) == (201, paid["id"], "paid")

    reused = await _post(http, api_stack, "/v1/payments", {**body, "amount": "10.00"}, unique)
    assert (reused.status_code, reused.headers["content-type"]) == (422, PROBLEM)
    assert reused.json()["code"] == "idempotency_key_reused"

    fetched = await http.get(f"/v1/payments/{paid['id']}", headers=api_stack.headers())
    assert (fetched.status_code, fetched.json()["status"]) == (200, "paid")
    listed = await http.get(
        "/v1/payments", params={"order_id": body["order_id"]}, headers=api_stack.headers()
    )
    assert [p["id"] for p in listed.json()["data"]] == [paid["id"]]


async def test_second_payment_for_a_paid_order_is_409(api_stack, http, unique):
    assert (await _post(http, api_stack, "/v1/payments", payment(unique), f"{unique}-1")).status_code == 201
    second = await _post(http, api_stack, "/v1/payments", payment(unique), f"{unique}-2")
    assert (second.status_code, second.headers["content-type"]) == (409, PROBLEM)
    assert second.json()["code"] == "order_already_paid"
    assert second.json()["payment_id"].startswith("pay_")


async def test_decline_is_402_with_the_failure(api_stack, http, unique):
    response = await _post(http, api_stack, "/v1/payments", payment(unique, "tok_chargeDeclined"), unique)
    assert response.status_code == 402, response.text
    body = response.json()
    assert body["status"] == "failed"
    assert body["failure"]["decline_code"] == "generic_decline"
    assert body["captured_amount"] == "0.00"


async def test_three_d_secure_then_complete_action(api_stack, http, unique):
    body = payment(unique, "tok_threeDSecure2Required", return_url="https://shop.example/return")
    created = await _post(http, api_stack, "/v1/payments", body, unique)
    assert created.status_code == 202, created.text
    waiting = created.json()
    assert waiting["status"] == "authorizing"
    assert waiting["next_action"]["type"] == "redirect_to_url"
    assert waiting["next_action"]["url"].startswith("https://3ds.mock.invalid/")

    path = f"/v1/payments/{waiting['id']}/actions/complete"
    no_key = await http.post(path, json={}, headers=api_stack.headers())
    assert no_key.status_code == 400
    completed = await _post(
        http, api_stack, path, {"data": {"three_ds_result": "authenticated"}}, f"{unique}-back"
    )
    assert completed.status_code == 200, completed.text
    assert (completed.json()["status"], completed.json()["next_action"]) == ("paid", None)


async def test_three_d_secure_failed_authentication(api_stack, http, unique):
    created = await _post(
        http, api_stack, "/v1/payments", payment(unique, "tok_threeDSecure2Required"), unique
    )
    path = f"/v1/payments/{created.json()['id']}/actions/complete"
    completed = await _post(http, api_stack, path, {"data": {"three_ds_result": "failed"}}, f"{unique}-back")
    assert completed.status_code == 200, completed.text
    assert completed.json()["status"] == "failed"
    assert completed.json()["failure"]["decline_code"] == "three_ds_failed"


async def test_manual_capture_partial(api_stack, http, unique):
    created = await _post(http, api_stack, "/v1/payments", payment(unique, capture_method="manual"), unique)
    assert (created.status_code, created.json()["status"]) == (201, "authorized")
    capture = f"/v1/payments/{created.json()['id']}/capture"

    too_much = await _post(http, api_stack, capture, {"amount": "60.00"}, f"{unique}-c0")
    assert (too_much.status_code, too_much.json()["code"]) == (422, "amount_exceeds")
    precise = await _post(http, api_stack, capture, {"amount": "20.001"}, f"{unique}-c0")
    assert (precise.status_code, precise.json()["errors"][0]["pointer"]) == (422, "/amount")

    captured = await _post(http, api_stack, capture, {"amount": "20.00"}, f"{unique}-c1")
    assert captured.status_code == 200, captured.text
    assert (captured.json()["status"], captured.json()["captured_amount"]) == ("paid", "20.00")

    replay = await _post(http, api_stack, capture, {"amount": "20.00"}, f"{unique}-c1")
    assert (replay.status_code, replay.json()["captured_amount"]) == (200, "20.00")
    again = await _post(http, api_stack, capture, None, f"{unique}-c2")
    assert (again.status_code, again.json()["code"]) == (409, "invalid_state")


async def test_refunds_partial_replayed_and_over_refund(api_stack, http, unique):
    created = await _post(http, api_stack, "/v1/payments", payment(unique), unique)
    refunds = f"/v1/payments/{created.json()['id']}/refunds"

    first = await _post(http, api_stack, refunds, {"amount": "10.00", "reason": "damaged"}, f"{unique}-r1")
    assert first.status_code == 201, first.text
    assert (first.json()["status"], first.json()["amount"], first.json()["reason"]) == (
        "succeeded",
        "10.00",
        "damaged",
    )
    replay = await _post(http, api_stack, refunds, {"amount": "10.00", "reason": "damaged"}, f"{unique}-r1")
    assert (replay.status_code, replay.json()["id"]) == (201, first.json()["id"])

    second = await _post(http, api_stack, refunds, {"amount": "15.00"}, f"{unique}-r2")
    assert (second.status_code, second.json()["amount"]) == (201, "15.00")
    assert second.json()["id"] != first.json()["id"]

    over = await _post(http, api_stack, refunds, {"amount": "30.00"}, f"{unique}-r3")
    assert (over.status_code, over.headers["content-type"], over.json()["code"]) == (
        422,
        PROBLEM,
        "amount_exceeds",
    )
    assert "24.99" in over.json()["detail"]

    rest = await _post(http, api_stack, refunds, None, f"{unique}-r4")
    assert (rest.status_code, rest.json()["amount"]) == (201, "24.99")
    done = await _post(http, api_stack, refunds, {"amount": "0.01"}, f"{unique}-r5")
    assert (done.status_code, done.json()["code"]) == (422, "amount_exceeds")

    async def refunded():
        view = await http.get(f"/v1/payments/{created.json()['id']}", headers=api_stack.headers())
        return view.json() if view.json()["status"] == "refunded" else None

    view = await _eventually(refunded)
    assert view is not None
    assert view["refunded_amount"] == "49.99"
    assert sorted(r["amount"] for r in view["refunds"]) == ["10.00", "15.00", "24.99"]


async def test_cancel_an_authorization(api_stack, http, unique):
    created = await _post(http, api_stack, "/v1/payments", payment(unique, capture_method="manual"), unique)
    path = f"/v1/payments/{created.json()['id']}"
    cancelled = await _post(http, api_stack, f"{path}/cancel", {"reason": "abandoned"}, f"{unique}-x1")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    again = await _post(http, api_stack, f"{path}/cancel", None, f"{unique}-x2")
    assert (again.status_code, again.json()["code"]) == (409, "invalid_state")
    capture = await _post(http, api_stack, f"{path}/capture", None, f"{unique}-x3")
    assert (capture.status_code, capture.json()["code"]) == (409, "invalid_state")


async def test_requests_refused_before_anything_starts(api_stack, http, unique):
    no_key = await http.post("/v1/payments", json=payment(unique), headers=api_stack.headers())
    assert (no_key.status_code, no_key.json()["code"]) == (400, "idempotency_key_required")
    decimals = await _post(http, api_stack, "/v1/payments", payment(unique, amount="49.999"), unique)
    assert (decimals.status_code, decimals.json()["errors"][0]["pointer"]) == (422, "/amount")
    card = await _post(http, api_stack, "/v1/payments", payment(unique, "4242424242424242"), unique)
    assert (card.status_code, card.json()["code"]) == (422, "card_data_not_allowed")
    assert "4242424242424242" not in card.text
    # None of them started a workflow: the key is still free for a valid request.
    assert (await _post(http, api_stack, "/v1/payments", payment(unique), unique)).status_code == 201
    missing = await http.get("/v1/payments/pay_" + "a" * 26, headers=api_stack.headers())
    assert (missing.status_code, missing.json()["code"]) == (404, "payment_not_found")


async def test_webhooks_forged_duplicate_and_unknown(api_stack, http, unique):
    created = await _post(http, api_stack, "/v1/payments", payment(unique, "tok_async_webhook"), unique)
    assert created.status_code == 202, created.text
    payment_id = created.json()["id"]
    mock = api_stack.gateway("mock")
    notification = mock.settle(payment_id)

    headers, body = mock.build_webhook(notification, secrets=["not-the-secret"])
    forged = await http.post("/webhooks/mock", content=body, headers=headers)
    assert (forged.status_code, forged.headers["content-type"]) == (400, PROBLEM)
    assert await _signals(api_stack, payment_id) == 0

    headers, body = mock.build_webhook(notification)
    for _ in range(2):  # delivered twice, as providers do
        delivered = await http.post("/webhooks/mock", content=body, headers=headers)
        assert delivered.status_code == 200, delivered.text
    # A signal that arrives during a workflow task joins the history when that task completes.
    assert await _eventually(lambda: _at_least(_signals(api_stack, payment_id), 2)) == 2
    assert await api_stack.store.webhook_outcome("mock", notification.event_id()) == WebhookOutcome.SIGNALLED

    async def paid():
        view = await api_stack.store.get(payment_id)
        return view if view is not None and view.status is PaymentStatus.PAID else None

    assert await _eventually(paid) is not None
    events = [e.type for e in await api_stack.store.events(payment_id)]
    assert events.count("webhook.received") == 1  # the workflow applied the duplicate once

    stranger = MockWebhook(
        type=GatewayEventKind.PAYMENT_SUCCEEDED.value,
        payment_id=f"pay_{unique}",
        provider_payment_id=f"pi_{unique}",
    )
    headers, body = mock.build_webhook(stranger)
    unknown = await http.post("/webhooks/mock", content=body, headers=headers)
    assert unknown.status_code == 200
    assert (
        await api_stack.store.webhook_outcome("mock", stranger.event_id()) == WebhookOutcome.UNKNOWN_PAYMENT
    )


async def test_replay_after_the_workflow_closed(temporal_env, task_queue, sqlite_url, unique):
    """With no settlement window the workflow closes once paid; a replay must answer the payment,
    never start a second one under the same id."""
    overrides = {"payment": {"settlement_window_seconds": 0, "payment_window_seconds": 0}}
    async with (
        running_stack(
            temporal_env.client, task_queue=task_queue, db_url=sqlite_url, config_overrides=overrides
        ) as stack,
        stack.http() as http,
    ):
        body = payment(unique)
        first = await _post(http, stack, "/v1/payments", body, unique)
        assert first.status_code == 201, first.text
        handle = stack.client.get_workflow_handle(workflow_id(first.json()["id"]))
        await handle.result()

        replay = await _post(http, stack, "/v1/payments", body, unique)
        assert (replay.status_code, replay.json()["id"], replay.json()["status"]) == (
            201,
            first.json()["id"],
            "paid",
        )
        other = await _post(http, stack, "/v1/payments", payment(f"{unique}-other"), unique)
        assert (other.status_code, other.json()["code"]) == (422, "idempotency_key_reused")
        runs = [
            w async for w in stack.client.list_workflows(f"WorkflowId = '{workflow_id(first.json()['id'])}'")
        ]
        assert len(runs) == 1


async def test_refund_after_the_workflow_closed(temporal_env, task_queue, sqlite_url, unique):
    """Past its window the workflow is closed; a refund starts a run from the stored payment
    (activities/reopen.py) and is made, once, however often it is retried."""
    overrides = {"payment": {"settlement_window_seconds": 0, "payment_window_seconds": 0}}
    async with (
        running_stack(
            temporal_env.client, task_queue=task_queue, db_url=sqlite_url, config_overrides=overrides
        ) as stack,
        stack.http() as http,
    ):
        paid = await _post(http, stack, "/v1/payments", payment(unique), unique)
        payment_id = paid.json()["id"]
        await stack.client.get_workflow_handle(workflow_id(payment_id)).result()

        path = f"/v1/payments/{payment_id}/refunds"
        refund = await _post(http, stack, path, {"amount": "10.00"}, f"{unique}-refund")
        again = await _post(http, stack, path, {"amount": "10.00"}, f"{unique}-refund")
        too_much = await _post(http, stack, path, {"amount": "100.00"}, f"{unique}-refund-2")
        view = await stack.store.get(payment_id)
        await stack.client.get_workflow_handle(workflow_id(payment_id)).terminate()
    assert refund.status_code == 201, refund.text
    assert (again.status_code, again.json()["id"]) == (201, refund.json()["id"])
    assert too_much.status_code == 422, too_much.text
    assert (view.status, view.refunded_minor, len(view.refunds)) == (
        PaymentStatus.PARTIALLY_REFUNDED,
        1000,
        1,
    )
