"""Webhooks under stress, through real HTTP into the real receiver and a real worker: the same event
many times at once, events out of order, an event before the workflow waits for it, an event for a
closed workflow, forged / stale / tampered signatures, malformed and oversized bodies, unknown event
types, and Stripe's own notifications replayed backwards. Each has one defined answer, and none moves
a payment backwards or counts an amount twice.

One stack (mock gateway and the fake Stripe) serves the module; each test has its own ids.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
import pytest_asyncio
from temporalio.api.enums.v1 import EventType
from temporalio.service import RPCError

from activities.gateways.mock.adapter import MockGateway, MockWebhook
from activities.gateways.stripe.fake import FakeStripe
from api.auth import DEFAULT_MERCHANT
from api.payments import derive_payment_id
from tests.stack import API_KEY_ID, Stack, running_stack
from workflows.client import workflow_id
from workflows.domain import PaymentStatus, PaymentView
from workflows.gateway_io import GatewayEventKind, RefundCall
from workflows.money import Amount
from workflows.payment import PaymentWorkflow
from workflows.webhook_inbox import WebhookOutcome

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")

PROBLEM = "application/problem+json"
CONCURRENT_DELIVERIES = 25


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def fake() -> AsyncIterator[FakeStripe]:
    async with FakeStripe() as server:
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stack(temporal_env, tmp_path_factory, fake: FakeStripe) -> AsyncIterator[Stack]:
    db = tmp_path_factory.mktemp("webhook-stress") / "durapay.db"
    # The workflows' own status poll is pushed out: what moves a payment here is the webhooks.
    overrides = {"payment": {"status_poll_seconds": 3600, "stripe": fake.gateway_section()}}
    async with running_stack(
        temporal_env.client,
        task_queue=f"tq-webhook-stress-{uuid.uuid4().hex[:8]}",
        db_url=f"sqlite+aiosqlite:///{db}",
        config_overrides=overrides,
    ) as running:
        fake.webhook_url = f"{running.webhook_url}/stripe"
        yield running
        await fake.wait_for_webhooks()


@pytest_asyncio.fixture
async def http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with stack.http() as client:
        yield client


@pytest.fixture
def mock(stack: Stack) -> MockGateway:
    return stack.gateway("mock")  # type: ignore[return-value]


def payment(unique: str, token: str = "tok_visa", **fields: Any) -> dict[str, Any]:
    return {
        "order_id": f"order-{unique}",
        "amount": "49.99",
        "currency": "USD",
        "payment_method": {"type": "card", "token": token},
        **fields,
    }


async def create(
    http: httpx.AsyncClient, stack: Stack, unique: str, token: str = "tok_visa", **fields: Any
) -> dict:
    response = await http.post(
        "/v1/payments", json=payment(unique, token, **fields), headers=stack.headers(unique)
    )
    assert response.status_code in (201, 202), response.text
    return response.json()


async def deliver(
    http: httpx.AsyncClient, mock: MockGateway, event: MockWebhook, **sign: Any
) -> httpx.Response:
    headers, body = mock.build_webhook(event, **sign)
    return await http.post("/webhooks/mock", content=body, headers=headers)


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 15.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value is not None or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(0.05)


def status_is(
    stack: Stack, payment_id: str, status: PaymentStatus
) -> Callable[[], Awaitable[PaymentView | None]]:
    async def check() -> PaymentView | None:
        view = await stack.store.get(payment_id)
        return view if view is not None and view.status is status else None

    return check


async def applied(stack: Stack, payment_id: str, event_id: str) -> int:
    """How many times the workflow applied `event_id` (it records each application once)."""
    return sum(
        1
        for e in await stack.store.events(payment_id)
        if e.type == "webhook.received" and e.data.get("event_id") == event_id
    )


async def settled_events(stack: Stack, payment_id: str) -> list[str]:
    """The payment's record once the workflow is done with what was signalled to it: its version
    (bumped by every transition) has stopped moving, and the store has caught up with it."""
    handle = stack.client.get_workflow_handle(workflow_id(payment_id))
    deadline = asyncio.get_running_loop().time() + 15
    version = (await handle.query(PaymentWorkflow.view)).version
    while asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.3)
        now = (await handle.query(PaymentWorkflow.view)).version
        stored = await stack.store.get(payment_id)
        if now == version and stored is not None and stored.version == now:
            break
        version = now
    return [e.type for e in await stack.store.events(payment_id)]


async def signals(stack: Stack, payment_id: str) -> int:
    count = 0
    async for event in stack.client.get_workflow_handle(workflow_id(payment_id)).fetch_history_events():
        count += event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    return count


# ------------------------------------------------------------------------------ duplicates


async def test_the_same_event_many_times_at_once_is_applied_once(stack, http, mock, unique):
    waiting = await create(http, stack, unique, "tok_async_webhook")
    assert waiting["status"] == "authorizing"
    notification = mock.settle(waiting["id"])
    headers, body = mock.build_webhook(notification)

    answers = await asyncio.gather(
        *(http.post("/webhooks/mock", content=body, headers=headers) for _ in range(CONCURRENT_DELIVERIES))
    )

    assert [a.status_code for a in answers] == [200] * CONCURRENT_DELIVERIES
    paid = await eventually(status_is(stack, waiting["id"], PaymentStatus.PAID))
    assert paid is not None and paid.captured_minor == 4999
    events = await settled_events(stack, waiting["id"])
    assert await applied(stack, waiting["id"], notification.event_id()) == 1
    assert (events.count("payment.captured"), events.count("order.paid")) == (1, 1)
    assert await stack.store.webhook_outcome("mock", notification.event_id()) == WebhookOutcome.SIGNALLED


# ------------------------------------------------------------------------------ out of order


async def test_refund_confirmation_before_the_capture_confirmation(stack, http, mock, unique):
    paid = await create(http, stack, unique)
    refund = await http.post(
        f"/v1/payments/{paid['id']}/refunds", json={"amount": "10.00"}, headers=stack.headers(f"{unique}-r")
    )
    assert (refund.status_code, refund.json()["status"]) == (201, "succeeded"), refund.text
    refunded = mock.webhook_for(paid["id"], GatewayEventKind.REFUND_SUCCEEDED, refund_id=refund.json()["id"])
    captured = mock.webhook_for(paid["id"], GatewayEventKind.PAYMENT_SUCCEEDED)

    # The provider's notifications arrive backwards, and the refund's twice.
    for event in (refunded, captured, refunded):
        assert (await deliver(http, mock, event)).status_code == 200

    await settled_events(stack, paid["id"])
    view = await stack.store.get(paid["id"])
    assert (view.status, view.captured_minor, view.refunded_minor) == (
        PaymentStatus.PARTIALLY_REFUNDED,
        4999,
        1000,
    )
    assert [(r.status.value, r.amount.minor) for r in view.refunds] == [("succeeded", 1000)]
    assert await applied(stack, paid["id"], refunded.event_id()) == 1


async def test_failure_or_cancellation_after_success_changes_nothing(stack, http, mock, unique):
    paid = await create(http, stack, unique)
    before = await stack.store.get(paid["id"])
    late = [
        mock.webhook_for(
            paid["id"], GatewayEventKind.PAYMENT_FAILED, failure_code="card_declined", id=f"evt_f_{unique}"
        ),
        mock.webhook_for(paid["id"], GatewayEventKind.PAYMENT_CANCELLED, id=f"evt_c_{unique}"),
        # A success for another amount than was asked for is not accepted as a new capture.
        mock.webhook_for(
            paid["id"], GatewayEventKind.PAYMENT_SUCCEEDED, amount_minor=1, id=f"evt_s_{unique}"
        ),
    ]

    for event in late:
        assert (await deliver(http, mock, event)).status_code == 200

    events = await settled_events(stack, paid["id"])
    view = await stack.store.get(paid["id"])
    assert (view.status, view.captured_minor, view.failure) == (PaymentStatus.PAID, 4999, None)
    assert view.completed_at == before.completed_at
    assert events.count("webhook.received") == 3
    assert events.count("payment.captured") == 1


async def refund_before_confirmation(
    stack: Stack, http: httpx.AsyncClient, mock: MockGateway, unique: str
) -> PaymentView:
    """A payment paid at the provider and partly refunded there (from its dashboard), whose refund
    notification arrives before the notification confirming the payment."""
    waiting = await create(http, stack, unique, "tok_async_webhook")
    confirmation = mock.settle(waiting["id"])
    made_there = await mock.refund(
        RefundCall(
            gateway="mock",
            payment_id=waiting["id"],
            provider_payment_id=waiting["provider_payment_id"],
            refund_id=f"dash_{unique}",
            amount=Amount(minor=1000, currency="USD"),
            idempotency_key=f"dashboard:{unique}",
        )
    )
    refund_note = mock.webhook_for(
        waiting["id"],
        GatewayEventKind.REFUND_SUCCEEDED,
        refund_id=f"dash_{unique}",
        provider_refund_id=made_there.provider_refund_id,
    )
    # Out of order, and each delivered again afterwards as providers retry.
    for event in (refund_note, confirmation, refund_note, confirmation):
        assert (await deliver(http, mock, event)).status_code == 200
    await eventually(status_is(stack, waiting["id"], PaymentStatus.PARTIALLY_REFUNDED))
    await settled_events(stack, waiting["id"])
    return await stack.store.get(waiting["id"])


async def test_a_refund_notification_that_overtakes_the_payments_confirmation(stack, http, mock, unique):
    """Held until the payment is confirmed, then counted once: never against nothing, never twice."""
    view = await refund_before_confirmation(stack, http, mock, unique)

    assert (view.status, view.captured_minor, view.refunded_minor) == (
        PaymentStatus.PARTIALLY_REFUNDED,
        4999,
        1000,
    )
    assert [(r.refund_id, r.status.value, r.amount.minor) for r in view.refunds] == [
        (f"dash_{unique}", "succeeded", 1000)
    ]
    assert [e.type for e in await stack.store.events(view.id)].count("payment.captured") == 1


# ------------------------------------------------------------------------------ timing


async def test_an_event_before_the_workflow_waits_for_it(stack, http, mock, unique):
    """The success notification lands while the workflow is still inside its authorize call."""
    payment_id = derive_payment_id(DEFAULT_MERCHANT, unique)
    early = MockWebhook(
        type=GatewayEventKind.PAYMENT_SUCCEEDED.value,
        payment_id=payment_id,
        amount_minor=4999,
        currency="USD",
        id=f"evt_early_{unique}",
    )
    # Before there is any workflow: acknowledged (the provider must stop), recorded, nothing started.
    assert (await deliver(http, mock, early)).status_code == 200
    assert await stack.store.webhook_outcome("mock", early.event_id()) == WebhookOutcome.UNKNOWN_PAYMENT

    mock.settings.latency_ms = 1500  # the provider is slow to answer the authorization
    try:
        creating = asyncio.create_task(create(http, stack, unique, "tok_async_webhook"))
        handle = stack.client.get_workflow_handle(workflow_id(payment_id))

        async def authorizing() -> bool | None:
            try:
                async for event in handle.fetch_history_events():
                    # Scheduled, not started: the server writes a started event only with the result.
                    if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                        return True
            except RPCError:
                return None  # not started yet
            return None

        assert await eventually(authorizing) is True
        # The provider delivers it again, now that the payment exists: signalled, while the
        # workflow is still inside the authorize call that has not told it anything yet.
        assert (await deliver(http, mock, early)).status_code == 200
        first_answer = await creating
    finally:
        mock.settings.latency_ms = 0

    assert first_answer["status"] in ("authorizing", "paid")
    paid = await eventually(status_is(stack, payment_id, PaymentStatus.PAID))
    assert paid is not None and paid.captured_minor == 4999
    await settled_events(stack, payment_id)
    assert await applied(stack, payment_id, early.event_id()) == 1
    order = [
        e.event_type
        async for e in handle.fetch_history_events()
        if e.event_type
        in (EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED, EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)
    ]
    # The signal came in while the authorization was still running.
    assert order[:2] == [
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
        EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
    ]


async def test_an_event_for_a_closed_workflow(temporal_env, task_queue, sqlite_url, unique):
    """The payment's window is over (none at all here): a run started from the stored payment
    takes the event, records it, and leaves the paid payment as it was (a failure reported after
    the success is stale)."""
    overrides = {"payment": {"settlement_window_seconds": 0, "payment_window_seconds": 0}}
    async with (
        running_stack(
            temporal_env.client, task_queue=task_queue, db_url=sqlite_url, config_overrides=overrides
        ) as closing,
        closing.http() as http,
    ):
        paid = await create(http, closing, unique)
        handle = closing.client.get_workflow_handle(workflow_id(paid["id"]))
        await handle.result()
        before = await closing.store.get(paid["id"])
        mock: MockGateway = closing.gateway("mock")  # type: ignore[assignment]
        late = mock.webhook_for(
            paid["id"], GatewayEventKind.PAYMENT_FAILED, failure_code="card_declined", id=f"evt_{unique}"
        )

        answer = await deliver(http, mock, late)

        assert answer.status_code == 200
        assert await closing.store.webhook_outcome("mock", late.event_id()) == WebhookOutcome.SIGNALLED
        reopened = await handle.query(PaymentWorkflow.view)
        for _ in range(100):
            if [e.type for e in await closing.store.events(paid["id"])][-2:] == [
                "payment.reopened",
                "webhook.received",
            ]:
                break
            await asyncio.sleep(0.05)
        after = await closing.store.get(paid["id"])
        await handle.terminate()
    assert (after.status, reopened.status) == (PaymentStatus.PAID, PaymentStatus.PAID)
    assert after.version == before.version + 2  # reopened, then the stale event recorded


# ------------------------------------------------------------------------------ hostile deliveries


async def test_forged_stale_future_and_tampered_signatures_are_refused(stack, http, mock, unique):
    waiting = await create(http, stack, unique, "tok_async_webhook")
    notification = mock.settle(waiting["id"])
    now = int(time.time())
    genuine_headers, genuine_body = mock.build_webhook(notification)
    attempts = {
        "wrong secret": mock.build_webhook(notification, secrets=["whsec_guess"]),
        "no signature": ({"Content-Type": "application/json"}, genuine_body),
        "garbled header": ({"Mock-Signature": "v1=deadbeef"}, genuine_body),
        # A genuine delivery captured and replayed later, and one dated ahead to outlive the window.
        "replayed after the tolerance": mock.build_webhook(notification, timestamp=now - 3600),
        "dated in the future": mock.build_webhook(notification, timestamp=now + 3600),
        "tampered body": (genuine_headers, genuine_body.replace(b"4999", b"1")),
    }

    for name, (headers, body) in attempts.items():
        answer = await http.post("/webhooks/mock", content=body, headers=headers)
        assert (answer.status_code, answer.headers["content-type"]) == (400, PROBLEM), name
        assert answer.json()["code"] == "webhook_signature_invalid"
        assert "secret" not in answer.text and "timestamp" not in answer.text  # nothing for the forger

    assert await signals(stack, waiting["id"]) == 0
    assert (await stack.store.get(waiting["id"])).status is PaymentStatus.AUTHORIZING
    assert await stack.store.webhook_outcome("mock", notification.event_id()) is None
    # The genuine delivery, replayed within the tolerance as providers retry: taken, applied once.
    for _ in range(2):
        assert (
            await http.post("/webhooks/mock", content=genuine_body, headers=genuine_headers)
        ).status_code == 200
    assert await eventually(status_is(stack, waiting["id"], PaymentStatus.PAID)) is not None
    await settled_events(stack, waiting["id"])
    assert await applied(stack, waiting["id"], notification.event_id()) == 1


async def test_malformed_oversized_and_unknown(stack, http, mock, unique):
    paid = await create(http, stack, unique)
    secret = mock.settings.webhook_secret

    def signed_raw(body: bytes) -> dict[str, str]:
        from activities.gateways.signing import hmac_sha256_hex

        t = int(time.time())
        return {
            "Mock-Signature": f"t={t},v1={hmac_sha256_hex(secret.get_secret_value(), f'{t}.'.encode() + body)}"
        }

    malformed = {
        "not json": b"{{{",
        "not an event": b'{"id": "evt_x"}',
        "wrong types": b'{"id": "evt_x", "type": "payment.succeeded", "created": "yesterday", "data": []}',
        "not utf-8": b"\xff\xfe\x00",
    }
    for name, body in malformed.items():
        unsigned = await http.post("/webhooks/mock", content=body)
        signed = await http.post("/webhooks/mock", content=body, headers=signed_raw(body))
        for answer in (unsigned, signed):
            assert (answer.status_code, answer.headers["content-type"]) == (400, PROBLEM), name

    huge = b'{"pad": "' + b"x" * (stack.config.api.max_body_bytes + 1) + b'"}'
    declared = await http.post("/webhooks/mock", content=huge, headers=signed_raw(huge))

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(huge), 8192):
            yield huge[start : start + 8192]

    streamed = await http.post("/webhooks/mock", content=chunks(), headers=signed_raw(huge))
    for answer in (declared, streamed):
        assert (answer.status_code, answer.headers["content-type"]) == (413, PROBLEM)
        assert answer.json()["code"] == "payload_too_large"

    unknown_gateway = await http.post("/webhooks/paypal", content=b"{}")
    assert (unknown_gateway.status_code, unknown_gateway.json()["code"]) == (404, "unknown_gateway")
    wrong_method = await http.get("/webhooks/mock")
    assert (wrong_method.status_code, wrong_method.headers["content-type"]) == (405, PROBLEM)

    # A genuine notification of a type durapay does not act on: acknowledged and recorded only.
    strange = mock.webhook_for(paid["id"], "payment.teleported", id=f"evt_t_{unique}")
    assert (await deliver(http, mock, strange)).status_code == 200
    events = await settled_events(stack, paid["id"])
    assert await applied(stack, paid["id"], strange.event_id()) == 1
    view = await stack.store.get(paid["id"])
    assert (view.status, view.captured_minor, view.refunded_minor) == (PaymentStatus.PAID, 4999, 0)
    assert events.count("payment.captured") == 1
    # The receiver still works after all that.
    assert (await http.get("/healthz")).status_code == 200


# ------------------------------------------------------------------------------ Stripe's own notifications


async def test_stripe_notifications_replayed_backwards_and_at_once(stack, http, fake, unique):
    created = await http.post(
        "/v1/payments", json=payment(unique, "pm_card_visa", gateway="stripe"), headers=stack.headers(unique)
    )
    assert created.status_code == 201, created.text
    payment_id = created.json()["id"]
    refund = await http.post(
        f"/v1/payments/{payment_id}/refunds", json={"amount": "15.00"}, headers=stack.headers(f"{unique}-r")
    )
    assert refund.status_code == 201, refund.text
    await fake.wait_for_webhooks()
    [intent] = fake.intents_for(payment_id)
    about_it = [
        e
        for e in fake.events
        if intent["id"] in (e["data"]["object"].get("id"), e["data"]["object"].get("payment_intent"))
        or e["data"]["object"].get("id") in {c["id"] for c in fake.charges_for(payment_id)}
    ]
    assert {e["type"] for e in about_it} >= {"payment_intent.succeeded", "charge.refunded"}
    settled = await eventually(status_is(stack, payment_id, PaymentStatus.PARTIALLY_REFUNDED))
    assert settled is not None

    statuses = await asyncio.gather(*(fake.deliver(e) for e in reversed(about_it) for _ in range(5)))

    assert set(statuses) == {200}
    await settled_events(stack, payment_id)
    view = await stack.store.get(payment_id)
    assert (view.status, view.captured_minor, view.refunded_minor) == (
        PaymentStatus.PARTIALLY_REFUNDED,
        4999,
        1500,
    )
    assert len(view.refunds) == 1
    assert len(fake.charges_for(payment_id)) == 1
    for event in about_it:
        assert await applied(stack, payment_id, event["id"]) <= 1
