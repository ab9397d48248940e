"""Builders for workflow inputs in tests."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from temporalio.client import Client, WithStartWorkflowOperation, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy

from workflows.client import payment_id_from, workflow_id
from workflows.domain import (
    CardMethod,
    GatewayProfile,
    NextActionType,
    PaymentInput,
    PaymentSettings,
    PaymentStatus,
    PaymentView,
)
from workflows.event_proof import EventKeys
from workflows.gateway_io import GatewayEvent, GatewayEventKind
from workflows.messages import DecisionRequest
from workflows.money import Amount
from workflows.payment import PaymentWorkflow

PROFILE = GatewayProfile(
    id="fake", name="Fake", methods=["card", "wallet:wechat_pay"], currencies=["USD", "JPY", "CNY"]
)
# The same gateway declaring its 3-D Secure redirect notified (webhook and the customer's return):
# a payment waiting on it is not polled.
NOTIFYING_PROFILE = PROFILE.model_copy(update={"notified_actions": [NextActionType.REDIRECT_TO_URL]})


def payment_input(payment_id: str, **overrides) -> PaymentInput:
    settings = {"settlement_window_seconds": 3600, **overrides.pop("settings", {})}
    # One run that closes when its window ends, as before long-lived payments, unless a test asks
    # for a payment window of its own.
    settings.setdefault("payment_window_seconds", settings["settlement_window_seconds"])
    fields = dict(
        payment_id=payment_id,
        order_id=f"order-{payment_id}",
        gateway=PROFILE,
        amount=Amount(minor=4999, currency="USD"),
        method=CardMethod(token="tok_visa", last4="4242", fingerprint="fp_1", country="US"),
        request_fingerprint="fp-request",
        settings=PaymentSettings(**settings),
    )
    fields.update(overrides)
    return PaymentInput(**fields)


def paid_view(payment_id: str, **overrides) -> PaymentView:
    """The stored projection of a paid payment (what a closed payment's workflow left)."""
    inp = payment_input(payment_id)
    fields = dict(
        id=payment_id,
        order_id=inp.order_id,
        gateway=PROFILE.id,
        status=PaymentStatus.PAID,
        amount=inp.amount,
        captured_minor=inp.amount.minor,
        capture_method=inp.capture_method,
        method=inp.method,
        provider_payment_id="pi_1",
        created_at=datetime(2026, 1, 5, tzinfo=UTC),
        updated_at=datetime(2026, 1, 5, tzinfo=UTC),
        completed_at=datetime(2026, 1, 5, tzinfo=UTC),
        version=4,
    )
    fields.update(overrides)
    return PaymentView(**fields)


async def start_and_decide(client: Client, task_queue: str, inp: PaymentInput) -> tuple[PaymentView, object]:
    """Start the payment the way the API does (update-with-start) and return the decided view."""
    op = WithStartWorkflowOperation(
        PaymentWorkflow.run,
        inp,
        id=workflow_id(inp.payment_id),
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        task_queue=task_queue,
    )
    view = await client.execute_update_with_start_workflow(
        PaymentWorkflow.decide,
        DecisionRequest(request_fingerprint=inp.request_fingerprint),
        start_workflow_operation=op,
    )
    return view, await op.workflow_handle()


async def start_then_decide(client: Client, task_queue: str, inp: PaymentInput):
    """Start, then ask for the decision: the time-skipping test server has no update-with-start."""
    handle = await client.start_workflow(
        PaymentWorkflow.run, inp, id=workflow_id(inp.payment_id), task_queue=task_queue
    )
    view = await handle.execute_update(
        PaymentWorkflow.decide, DecisionRequest(request_fingerprint=inp.request_fingerprint)
    )
    return view, handle


def gateway_event(event_id: str, kind: GatewayEventKind, **fields) -> GatewayEvent:
    """A webhook event as the receiver normalizes it (without its proof: see `send_event`)."""
    return GatewayEvent(gateway=PROFILE.id, event_id=event_id, kind=kind, provider_type=kind.value, **fields)


# The event proof key of the tests' workers (tests/workflows/fake_activities.py checks with it).
TEST_EVENT_KEYS = EventKeys({"test": b"test-event-proof-key-of-32-bytes"}, "test")


async def send_event(handle: WorkflowHandle, event: GatewayEvent) -> None:
    """Signal `event` as the webhook receiver does once it has verified it: with its proof."""
    proven = TEST_EVENT_KEYS.prove(event, payment_id_from(handle.id))
    await handle.signal(PaymentWorkflow.gateway_event, proven)


async def wait_for(handle, predicate, *, timeout: float = 10.0) -> PaymentView:
    """Query the payment until `predicate(view)` holds and return that view."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        view = await handle.query(PaymentWorkflow.view)
        if predicate(view):
            return view
        if loop.time() > deadline:
            raise AssertionError(
                f"condition not met within {timeout}s; last view: {view.status.value} v{view.version}"
            )
        await asyncio.sleep(0.05)
