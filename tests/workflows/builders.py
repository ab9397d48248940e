"""Builders for workflow inputs in tests."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy

from workflows.client import workflow_id
from workflows.domain import (
    CardMethod,
    GatewayProfile,
    PaymentInput,
    PaymentSettings,
    PaymentStatus,
    PaymentView,
)
from workflows.gateway_io import GatewayEvent, GatewayEventKind
from workflows.messages import DecisionRequest
from workflows.money import Amount
from workflows.payment import PaymentWorkflow

PROFILE = GatewayProfile(
    id="fake", name="Fake", methods=["card", "wallet:wechat_pay"], currencies=["USD", "JPY", "CNY"]
)


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
    """A verified webhook as the receiver would signal it."""
    return GatewayEvent(gateway=PROFILE.id, event_id=event_id, kind=kind, provider_type=kind.value, **fields)


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
