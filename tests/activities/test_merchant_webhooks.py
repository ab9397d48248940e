"""Merchant webhooks: Standard Webhooks signatures (checked with the `standardwebhooks` reference
library), the outbox written with each transition, and delivery by MerchantWebhooksWorkflow through
real sockets: in order, at least once, through an hour of the endpoint being down (time skipping)."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import pytest_asyncio
from pydantic import SecretStr
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from temporalio.testing import ActivityEnvironment
from temporalio.worker import Worker

from activities.merchant_webhooks import (
    DeliveryStarter,
    DeliveryWaker,
    MerchantEndpoint,
    MerchantSecretError,
    MerchantWebhookActivities,
    secret_key,
)
from activities.store.repository import PaymentStore
from activities.store_activities import StoreActivities
from tests.activities.store.helpers import T0, engine, make_view, store
from workers.merchant_endpoint import LocalMerchantEndpoint
from workflows.client import merchant_webhooks_workflow_id
from workflows.domain import PaymentStatus
from workflows.ledger_io import PaymentEventRecord, PaymentTransition
from workflows.merchant_events import DeliveryAttempt, DeliveryStatus, MerchantEventType, merchant_events
from workflows.merchant_webhooks import MerchantWebhooksWorkflow

SECRET = SecretStr("whsec_" + base64.b64encode(os.urandom(32)).decode())


@pytest_asyncio.fixture
async def endpoint() -> AsyncIterator[LocalMerchantEndpoint]:
    async with LocalMerchantEndpoint(SECRET) as server:
        yield server


def _transitions(payment_id: str) -> list[PaymentTransition]:
    """A payment's life as the workflow records it: created, paid, refunded in part."""
    steps = [
        (PaymentStatus.PENDING, ["payment.created"]),
        (PaymentStatus.PAID, ["payment.captured", "order.paid", "payment.completed"]),
        (PaymentStatus.PARTIALLY_REFUNDED, ["refund.succeeded"]),
    ]
    return [
        PaymentTransition(
            view=make_view(payment_id, status=status, version=n + 1),
            events=[PaymentEventRecord(type=t) for t in types],
        )
        for n, (status, types) in enumerate(steps)
    ]


@pytest.mark.parametrize(
    "recorded",
    [["review.requested"], ["bank_transfer.received", "payment.requires_review"]],
    ids=["fraud-hold", "bank-transfer-mismatch"],
)
def test_a_payment_held_for_an_operator_tells_the_merchant_review_required(recorded: list[str]) -> None:
    held = PaymentTransition(
        view=make_view("pay_held", status=PaymentStatus.REQUIRES_REVIEW, version=2),
        events=[PaymentEventRecord(type=t) for t in recorded],
    )
    assert [e.type for e in merchant_events(held)] == [MerchantEventType.PAYMENT_REVIEW_REQUIRED]


async def _record_all(store: PaymentStore, payment_id: str, endpoint_url: str, woken: list[str]) -> None:
    target = MerchantEndpoint(endpoint_url, SECRET)
    activities = StoreActivities(store, endpoint_for=lambda _: target, wake_delivery=woken.append)
    for t in _transitions(payment_id):
        await ActivityEnvironment().run(activities.record_transition, t)


def test_secrets_are_whsec_base64_of_enough_bytes():
    assert len(secret_key(SECRET)) == 32
    for bad in ("abc", "whsec_not base64!", "whsec_" + base64.b64encode(b"short").decode()):
        with pytest.raises(MerchantSecretError):
            secret_key(SecretStr(bad))


async def test_recorded_transitions_write_merchant_events_and_start_their_delivery(store, unique, endpoint):
    started: list[str] = []
    await _record_all(store, f"pay_{unique}", endpoint.url, started)
    await _record_all(store, f"pay_{unique}", endpoint.url, started)  # retried: nothing twice

    page, more = await store.list_merchant_events(payment_id=f"pay_{unique}", limit=10)
    assert [e.type for e in page] == [  # newest first; payment.created, order.paid are internal
        MerchantEventType.REFUND_SUCCEEDED,
        MerchantEventType.PAYMENT_SUCCEEDED,
        MerchantEventType.PAYMENT_CAPTURED,
    ]
    assert not more
    assert {e.delivery_status for e in page} == {DeliveryStatus.PENDING}
    assert started == [f"pay_{unique}"] * 4  # woken per transition that raised an event to send
    assert await store.pending_merchant_events(f"pay_{unique}") == [e.id for e in reversed(page)]
    first, more = await store.list_merchant_events(payment_id=f"pay_{unique}", limit=2)
    rest, after = await store.list_merchant_events(
        payment_id=f"pay_{unique}", limit=2, starting_after=first[-1].id
    )
    assert (more, after, [e.id for e in first + rest]) == (True, False, [e.id for e in page])


async def test_webhooks_verify_with_standard_webhooks_and_tampered_ones_do_not(store, unique, endpoint):
    await _record_all(store, f"pay_{unique}", endpoint.url, [])
    delivery = MerchantWebhookActivities(store, lambda _: MerchantEndpoint(endpoint.url, SECRET))
    try:
        for event_id in await store.pending_merchant_events(f"pay_{unique}"):
            result = await ActivityEnvironment().run(delivery.deliver, event_id)
            assert result.done
    finally:
        await delivery.aclose()

    verifier = Webhook(SECRET.get_secret_value())
    types = []
    assert all(r.verified for r in endpoint.received)  # our own check, as the demo's merchant does
    for received in endpoint.received:
        lower, body = dict(received.headers), received.body
        payload = verifier.verify(body, lower)
        assert set(payload) == {"type", "timestamp", "data"}
        assert payload["data"]["payment_id"] == f"pay_{unique}"
        types.append(payload["type"])
        tampered = {
            "body": (body.replace(b'"status"', b'"Status"'), lower),
            "id": (body, {**lower, "webhook-id": "evt_other"}),
            "timestamp": (body, {**lower, "webhook-timestamp": str(int(lower["webhook-timestamp"]) - 1)}),
            "secret": (body, {**lower, "webhook-signature": "v1," + base64.b64encode(b"x" * 32).decode()}),
        }
        for name, (bad_body, bad_headers) in tampered.items():
            with pytest.raises(WebhookVerificationError):
                verifier.verify(bad_body, bad_headers)
                pytest.fail(f"tampered {name} verified")
    assert types == ["payment.captured", "payment.succeeded", "refund.succeeded"]
    event = await store.merchant_event(endpoint.received[0].id)
    assert event is not None and event.delivery_status is DeliveryStatus.DELIVERED
    [attempt] = event.attempts
    assert attempt.http_status == 200 and attempt.latency_ms >= 0


async def test_events_a_merchant_did_not_enable_are_recorded_not_sent(store, unique, endpoint):
    only_refunds = MerchantEndpoint(endpoint.url, SECRET, frozenset({MerchantEventType.REFUND_SUCCEEDED}))
    activities = StoreActivities(store, endpoint_for=lambda _: only_refunds)
    for t in _transitions(f"pay_{unique}"):
        await ActivityEnvironment().run(activities.record_transition, t)
    page, _ = await store.list_merchant_events(payment_id=f"pay_{unique}")
    assert [(e.type.value, e.delivery_status) for e in page] == [
        ("refund.succeeded", DeliveryStatus.PENDING),
        ("payment.succeeded", DeliveryStatus.NOT_SENT),
        ("payment.captured", DeliveryStatus.NOT_SENT),
    ]


async def test_delivery_survives_the_endpoint_down_for_an_hour(
    time_skipping_env, task_queue, sqlite_url, unique, endpoint
):
    from activities.store.db import create_engine, migrate

    await migrate(sqlite_url)
    db = create_engine(sqlite_url)
    store = PaymentStore(db)
    delivery = MerchantWebhookActivities(store, lambda _: MerchantEndpoint(endpoint.url, SECRET))
    client = time_skipping_env.client
    endpoint.status = 503
    payment_id = f"pay_{unique}"
    try:
        async with Worker(
            client,
            task_queue=task_queue,
            workflows=[MerchantWebhooksWorkflow],
            activities=delivery.definitions(),
        ):
            await _record_all(store, payment_id, endpoint.url, [])
            await DeliveryStarter(client, task_queue)(payment_id)
            await time_skipping_env.sleep(timedelta(hours=1))
            down = len(endpoint.received)
            endpoint.status = 204
            await time_skipping_env.sleep(timedelta(hours=1))
            handle = client.get_workflow_handle(merchant_webhooks_workflow_id(payment_id))
            await time_skipping_env.sleep(timedelta(hours=2))  # idle: the workflow closes
            history = await handle.fetch_history()
    finally:
        await delivery.aclose()
        await db.dispose()
    # Down: the first event retried on a backoff (10 s, 20 s, ... about 9 attempts in an hour),
    # never the next one before it.
    assert 6 <= down <= 12
    first = endpoint.received[0].id
    assert {r.id for r in endpoint.received[:down]} == {first}
    # Up: every event, in order, each delivered once after the retries of the first.
    order = list(dict.fromkeys(endpoint.ids()))
    assert len(order) == 3
    assert endpoint.ids()[down:] == order
    assert await store.pending_merchant_events(payment_id) == []
    assert endpoint.received[-1].payload["type"] == "refund.succeeded"
    assert history.events[-1].HasField("workflow_execution_completed_event_attributes")


async def test_the_sweep_starts_deliveries_whose_wake_was_lost(store, unique, endpoint):
    """The record activity's wake never reached Temporal (the worker died right after the commit):
    the sweep finds the payment by its pending, never attempted events, and only that payment."""
    started: list[str] = []

    async def start(payment_id: str) -> None:
        started.append(payment_id)

    lost, retrying = f"pay_{unique}_lost", f"pay_{unique}_retrying"
    await _record_all(store, lost, endpoint.url, [])
    await _record_all(store, retrying, endpoint.url, [])
    [head, *_] = await store.pending_merchant_events(retrying)
    attempt = DeliveryAttempt(attempted_at=T0, http_status=503, latency_ms=3)
    await store.record_delivery_attempt(head, attempt, delivered=False)
    waker = DeliveryWaker(store, start)  # type: ignore[arg-type]

    assert await waker.sweep(now=T0) == 0  # recorded at T0: a wake may still be on its way
    later = T0 + DeliveryWaker.MISSED_AFTER + timedelta(seconds=1)
    await waker.sweep(now=later)
    assert lost in started and retrying not in started


def test_a_dispute_event_names_the_dispute_that_moved():
    """Two disputes on one payment: the event for the second one's opening is about the second,
    and the first one's win closes the first, whatever their order in the view."""
    from workflows.domain import DisputeView
    from workflows.merchant_events import merchant_events

    disputes = [
        DisputeView(dispute_id="dp_1", status="won"),
        DisputeView(dispute_id="dp_2", status="needs_response"),
    ]
    view = make_view("pay_d", status=PaymentStatus.DISPUTED, version=7, disputes=disputes)
    opened = PaymentTransition(
        view=view, events=[PaymentEventRecord(type="dispute.needs_response", data={"dispute_id": "dp_2"})]
    )
    won = PaymentTransition(
        view=view, events=[PaymentEventRecord(type="dispute.won", data={"dispute_id": "dp_1"})]
    )
    [event] = merchant_events(opened)
    assert (event.type, event.data["dispute"]["id"]) == (MerchantEventType.DISPUTE_OPENED, "dp_2")  # type: ignore[index]
    [event] = merchant_events(won)
    assert (event.type, event.data["dispute"]["id"]) == (MerchantEventType.DISPUTE_CLOSED, "dp_1")  # type: ignore[index]
