"""The `fewer-local-steps` patch: local steps that do not depend on each other run side by side, and
a webhook's `webhook.received` record goes to the store with the transition the webhook causes.

The side-by-side steps are proven by making each wait for the other: run one after the other,
the payment would never be decided."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from temporalio import activity
from temporalio.worker import Worker

from tests.workflows.builders import gateway_event, payment_input, send_event, start_and_decide, wait_for
from tests.workflows.fake_activities import FakeWorld
from workflows import activity_names as act
from workflows.domain import FraudDecision, FraudResult, NextAction, NextActionType, PaymentStatus
from workflows.gateway_io import GatewayEventKind, GatewayPaymentStatus, GatewayResult
from workflows.ledger_io import FraudCheckRequest, OrderRelease, PaymentTransition
from workflows.money import Amount
from workflows.payment import PaymentWorkflow

WAIT_S = 5.0


class Rendezvous(FakeWorld):
    """The fake world, except that the fraud check returns only once `payment.created` is being
    recorded, and the order is confirmed only once the payment is being recorded as paid."""

    def __init__(self) -> None:
        super().__init__()
        self.created = asyncio.Event()
        self.paid = asyncio.Event()

    def activities(self) -> list:
        world = self
        replaced = {act.CHECK_FRAUD, act.CONFIRM_ORDER, act.RECORD_TRANSITION}

        @activity.defn(name=act.CHECK_FRAUD)
        async def fraud(r: FraudCheckRequest) -> FraudResult:
            world.calls["fraud"].append(r)
            await asyncio.wait_for(world.created.wait(), WAIT_S)
            return FraudResult(score=5, decision=FraudDecision.ALLOW, reasons=[])

        @activity.defn(name=act.CONFIRM_ORDER)
        async def confirm(r: OrderRelease) -> None:
            await asyncio.wait_for(world.paid.wait(), WAIT_S)
            world.calls["confirm"].append(r)

        @activity.defn(name=act.RECORD_TRANSITION)
        async def record(t: PaymentTransition) -> None:
            world.transitions.append(t)
            types = [e.type for e in t.events]
            if "payment.created" in types:
                world.created.set()
            if "payment.completed" in types:
                world.paid.set()

        kept = [
            a for a in super().activities() if activity._Definition.must_from_callable(a).name not in replaced
        ]
        return [*kept, fraud, confirm, record]


@pytest.fixture
async def world(temporal_env, task_queue) -> AsyncIterator[Rendezvous]:
    world = Rendezvous()
    async with Worker(
        temporal_env.client, task_queue=task_queue, workflows=[PaymentWorkflow], activities=world.activities()
    ):
        yield world


async def test_fraud_check_beside_the_created_record_and_order_confirmation_beside_the_paid_one(
    temporal_env, task_queue, unique, world
):
    # One after the other, the fraud check would time out and be retried for ever.
    view, handle = await asyncio.wait_for(
        start_and_decide(temporal_env.client, task_queue, payment_input(unique)), 3 * WAIT_S
    )
    assert view.status is PaymentStatus.PAID
    # The store knew the payment before the gateway was asked.
    assert world.events()[0] == "payment.created" and len(world.calls["authorize"]) == 1
    assert len(world.calls["fraud"]) == 1 and len(world.calls["confirm"]) == 1
    assert world.events() == ["payment.created", "payment.captured", "order.paid", "payment.completed"]
    # The fraud result is on the payment from its next transition on.
    assert world.transitions[-1].view.fraud is not None
    await handle.terminate()


async def test_a_webhook_is_recorded_with_what_it_causes_and_alone_when_it_causes_nothing(
    temporal_env, task_queue, unique, world
):
    world.authorize_answer = GatewayResult(
        status=GatewayPaymentStatus.REQUIRES_ACTION,
        provider_payment_id="pi_1",
        next_action=NextAction(type=NextActionType.REDIRECT_TO_URL, url="https://acs.example/3ds"),
    )
    world.created.set()  # this test is about webhooks, not the fraud check
    view, handle = await start_and_decide(temporal_env.client, task_queue, payment_input(unique))
    assert view.status is PaymentStatus.AUTHORIZING
    full = Amount(minor=4999, currency="USD")
    await send_event(
        handle,
        gateway_event("evt_ok", GatewayEventKind.PAYMENT_SUCCEEDED, amount=full),
    )
    await wait_for(handle, lambda v: v.status is PaymentStatus.PAID)
    # A confirmation of a paid payment changes nothing: its delivery is recorded on its own.
    await send_event(
        handle,
        gateway_event("evt_late", GatewayEventKind.PAYMENT_SUCCEEDED, amount=full),
    )
    await wait_for(handle, lambda v: v.version == 4)
    received = [
        ([e.type for e in t.events], [e.data.get("event_id") for e in t.events])
        for t in world.transitions[2:]
    ]
    assert received == [
        (
            ["webhook.received", "payment.captured", "order.paid", "payment.completed"],
            ["evt_ok", None, None, None],
        ),
        (["webhook.received"], ["evt_late"]),
    ]
    assert [t.view.version for t in world.transitions] == [1, 2, 3, 4]
    await handle.terminate()
