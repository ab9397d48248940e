"""Long-lived payments (patch `long-lived-payments`), on the time-skipping test server: a payment
takes refunds, disputes and provider events for its gateway's whole window (365 days by default),
in runs of one settlement period each; after the window a refund or an event starts a fresh run
from the stored projection (activities/reopen.py)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from activities.reopen import Reopener
from tests.workflows.builders import PROFILE, gateway_event, payment_input, start_then_decide, wait_for
from tests.workflows.fake_activities import FakeWorld
from workflows.domain import PaymentSettings, PaymentStatus, PaymentView, RefundStatus
from workflows.gateway_io import GatewayEventKind
from workflows.messages import RefundRequest
from workflows.money import Amount
from workflows.payment import PaymentWorkflow

DAY = timedelta(days=1)
MONTH = 30 * 86400
PART = Amount(minor=999, currency="USD")
# The gateway's own window (PROFILE declares none: the default year), in monthly runs.
LONG_LIVED = {"settlement_window_seconds": MONTH, "payment_window_seconds": None}


class StoredViews:
    """The store's projection as the fake record activity left it (what the reopener reads)."""

    def __init__(self, world: FakeWorld) -> None:
        self._world = world

    async def get(self, payment_id: str) -> PaymentView | None:
        views = [t.view for t in self._world.transitions if t.view.id == payment_id]
        return max(views, key=lambda v: v.version) if views else None


@pytest.fixture
async def run(time_skipping_env, task_queue):
    world = FakeWorld()
    client = time_skipping_env.client
    async with Worker(
        client, task_queue=task_queue, workflows=[PaymentWorkflow], activities=world.activities()
    ):
        reopener = Reopener(
            client, task_queue, StoredViews(world).get, {PROFILE.id: PROFILE}.get, lambda _: PaymentSettings()
        )
        yield world, time_skipping_env, reopener


async def _paid(env, task_queue: str, payment_id: str):
    view, handle = await start_then_decide(
        env.client, task_queue, payment_input(payment_id, settings=LONG_LIVED)
    )
    assert view.status is PaymentStatus.PAID
    # Messages go to the current run (a handle without a run id); the first run's handle follows
    # the chain of runs to the payment's result.
    return env.client.get_workflow_handle(handle.id), handle


async def test_a_refund_on_day_200(run, task_queue, unique):
    world, env, _ = run
    handle, first = await _paid(env, task_queue, unique)
    await env.sleep(200 * DAY)
    assert (
        await handle.describe()
    ).run_id != first.first_execution_run_id  # continued as new at each month's end
    refund = await handle.execute_update(
        PaymentWorkflow.refund, RefundRequest(refund_id="r200", amount_minor=999)
    )
    assert refund.status is RefundStatus.SUCCEEDED
    assert len(world.calls["refund"]) == 1
    view = await first.result()  # the year ends
    assert (view.status, view.refunded_minor) == (PaymentStatus.PARTIALLY_REFUNDED, 999)
    assert view.completed_at is not None
    assert view.updated_at - view.created_at < timedelta(days=201)


async def test_a_dispute_opened_on_day_100_and_won_on_day_160(run, task_queue, unique):
    world, env, _ = run
    handle, first = await _paid(env, task_queue, unique)
    await env.sleep(100 * DAY)
    await handle.signal(
        PaymentWorkflow.gateway_event,
        gateway_event(
            "evt_d100",
            GatewayEventKind.DISPUTE_OPENED,
            dispute_id="dp_1",
            amount=Amount(minor=4999, currency="USD"),
        ),
    )
    await wait_for(handle, lambda v: v.status is PaymentStatus.DISPUTED)
    await env.sleep(60 * DAY)
    await handle.signal(
        PaymentWorkflow.gateway_event,
        gateway_event("evt_d160", GatewayEventKind.DISPUTE_CLOSED, dispute_id="dp_1", dispute_status="won"),
    )
    view = await wait_for(handle, lambda v: v.status is PaymentStatus.PAID and v.disputes[0].status == "won")
    # The opening was delivered again after a month boundary: the carried event ids skip it.
    await env.sleep(40 * DAY)
    await handle.signal(
        PaymentWorkflow.gateway_event,
        gateway_event(
            "evt_d100",
            GatewayEventKind.DISPUTE_OPENED,
            dispute_id="dp_1",
            amount=Amount(minor=4999, currency="USD"),
        ),
    )
    view = await first.result()
    assert view.status is PaymentStatus.PAID
    assert [(d.dispute_id, d.status) for d in view.disputes] == [("dp_1", "won")]
    assert world.events().count("dispute.dispute.opened") == 1
    assert world.events().count("dispute.won") == 1


async def test_a_provider_event_on_day_400_starts_a_run_from_the_stored_state(run, task_queue, unique):
    world, env, reopener = run
    _, first = await _paid(env, task_queue, unique)
    closed = await first.result()  # the gateway's year is over
    assert closed.status is PaymentStatus.PAID
    await env.sleep(35 * DAY)
    # A refund made in the provider's dashboard, reported on day 400.
    late = gateway_event(
        "evt_d400", GatewayEventKind.REFUND_SUCCEEDED, provider_refund_id="re_dash", amount=PART
    )
    reopened = await reopener.signal(unique, late)
    assert reopened is not None
    view = await reopened.result()
    assert (view.status, view.refunded_minor) == (PaymentStatus.PARTIALLY_REFUNDED, 999)
    assert view.created_at == closed.created_at and view.version > closed.version
    assert world.events()[-3:] == ["payment.reopened", "webhook.received", "refund.succeeded"]
    assert world.calls["refund"] == []  # recorded, not refunded again
    assert await reopener.signal("no-such-payment", late) is None


async def test_history_stays_bounded_across_runs(dev, unique):
    """Messages only, on the dev server: a run continues as new once its history is long."""
    settings = {**LONG_LIVED, "max_history_events": 100}
    _, first = await dev.start(payment_input(unique, settings=settings))
    handle = dev.client.get_workflow_handle(first.id)
    dev.handles.append(handle)
    for n in range(40):
        await handle.signal(
            PaymentWorkflow.gateway_event,
            gateway_event(
                f"evt_{n}", GatewayEventKind.DISPUTE_OPENED, dispute_id=f"dp_{n}", dispute_status="won"
            ),
        )
    view = await wait_for(handle, lambda v: len(v.disputes) == 40, timeout=60)
    assert (await handle.describe()).run_id != first.first_execution_run_id
    history = await handle.fetch_history()
    assert len(history.events) < 100 + 20
    assert view.status is PaymentStatus.PAID


OLD_HISTORY = Path(__file__).parent / "histories" / "long-lived-payments" / "success.json"


async def test_a_payment_from_before_long_lived_payments_refunds_after_its_window(
    temporal_env, task_queue, unique
):
    """`success.json` is a payment whose workflow closed after its (old, fixed) settlement window.
    Its final view is what the store holds; a refund later starts a run from it."""
    history = WorkflowHistory.from_json("payment-old", json.loads(OLD_HISTORY.read_text()))
    completed = history.events[-1].workflow_execution_completed_event_attributes
    old = pydantic_data_converter.payload_converter.from_payloads(completed.result.payloads, [PaymentView])[0]
    old = old.model_copy(update={"id": unique})
    world = FakeWorld()
    world.transitions.append(_stored(old))
    client = temporal_env.client
    async with Worker(
        client, task_queue=task_queue, workflows=[PaymentWorkflow], activities=world.activities()
    ):
        reopener = Reopener(
            client, task_queue, StoredViews(world).get, {PROFILE.id: PROFILE}.get, lambda _: PaymentSettings()
        )
        handle = await reopener.start(unique)
        assert handle is not None
        refund = await handle.execute_update(
            PaymentWorkflow.refund, RefundRequest(refund_id="r_after", amount_minor=999)
        )
        assert refund.status is RefundStatus.SUCCEEDED
        view = await handle.query(PaymentWorkflow.view)
        await handle.terminate()
    assert (view.status, view.refunded_minor) == (PaymentStatus.PARTIALLY_REFUNDED, 999)
    assert [c.idempotency_key for c in world.calls["refund"]] == [f"payment-{unique}:refund:r_after"]


def _stored(view: PaymentView):
    from workflows.ledger_io import PaymentTransition

    return PaymentTransition(view=view, events=[])
