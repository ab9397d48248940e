"""Provider webhooks (the `gateway_event` signal) on the real dev server with fake activities:
disputes, and events that arrive out of order, late, or with the wrong amount."""

from __future__ import annotations

import asyncio

from temporalio.client import WorkflowUpdateStage

from tests.workflows.builders import TEST_EVENT_KEYS, gateway_event, payment_input, send_event, wait_for
from tests.workflows.fake_activities import Gate
from workflows.client import workflow_id
from workflows.domain import CaptureMethod, Failure, NextAction, NextActionType, PaymentStatus, RefundStatus
from workflows.gateway_io import EventProof, GatewayEventKind, GatewayPaymentStatus, GatewayResult
from workflows.messages import CancelRequest, RefundRequest
from workflows.money import Amount
from workflows.payment import PaymentWorkflow

FULL = Amount(minor=4999, currency="USD")


async def signal(handle, event, until):
    """Send a webhook; the view once `until(view)` holds."""
    await send_event(handle, event)
    return await wait_for(handle, until)


def status_is(status: PaymentStatus):
    return lambda view: view.status is status


async def test_dispute_opened_then_won(dev, unique):
    _, handle = await dev.start(payment_input(unique))
    opened = gateway_event(
        "evt_d1",
        GatewayEventKind.DISPUTE_OPENED,
        dispute_id="dp_1",
        dispute_status="needs_response",
        amount=FULL,
        dispute_reason="fraudulent",
    )
    view = await signal(handle, opened, status_is(PaymentStatus.DISPUTED))
    assert [(d.dispute_id, d.status, d.reason) for d in view.disputes] == [
        ("dp_1", "needs_response", "fraudulent")
    ]
    closed = gateway_event("evt_d2", GatewayEventKind.DISPUTE_CLOSED, dispute_id="dp_1", dispute_status="won")
    view = await signal(handle, closed, status_is(PaymentStatus.PAID))
    assert view.disputes[0].status == "won"
    assert "dispute.won" in dev.world.events()


async def test_dispute_lost_stays_disputed_and_won_restores_a_partial_refund(dev, unique):
    _, handle = await dev.start(payment_input(unique))
    await handle.execute_update(PaymentWorkflow.refund, RefundRequest(refund_id="r1", amount_minor=999))

    def dispute(event_id: str, kind: GatewayEventKind, dispute_id: str, status: str | None = None):
        return gateway_event(event_id, kind, dispute_id=dispute_id, dispute_status=status)

    def dispute_is(dispute_id: str, status: str):
        return lambda view: any(d.dispute_id == dispute_id and d.status == status for d in view.disputes)

    await signal(
        handle, dispute("evt_d1", GatewayEventKind.DISPUTE_OPENED, "dp_1"), status_is(PaymentStatus.DISPUTED)
    )
    view = await signal(
        handle, dispute("evt_d2", GatewayEventKind.DISPUTE_CLOSED, "dp_1", "lost"), dispute_is("dp_1", "lost")
    )
    assert view.status is PaymentStatus.DISPUTED
    # Two disputes: the payment is disputed until both are closed in our favour.
    await signal(
        handle,
        dispute("evt_d3", GatewayEventKind.DISPUTE_OPENED, "dp_2"),
        dispute_is("dp_2", "needs_response"),
    )
    view = await signal(
        handle, dispute("evt_d4", GatewayEventKind.DISPUTE_CLOSED, "dp_1", "won"), dispute_is("dp_1", "won")
    )
    assert view.status is PaymentStatus.DISPUTED
    view = await signal(
        handle, dispute("evt_d5", GatewayEventKind.DISPUTE_CLOSED, "dp_2", "won"), dispute_is("dp_2", "won")
    )
    assert view.status is PaymentStatus.PARTIALLY_REFUNDED


async def test_failure_after_success_is_stale(dev, unique):
    _, handle = await dev.start(payment_input(unique))
    before = await handle.query(PaymentWorkflow.view)
    view = await signal(
        handle,
        gateway_event(
            "evt_f", GatewayEventKind.PAYMENT_FAILED, failure=Failure(code="card_declined", message="late")
        ),
        lambda v: v.version > before.version,  # recorded as received, nothing else
    )
    assert view.status is PaymentStatus.PAID
    assert view.failure is None
    assert dev.world.calls["release"] == []


async def test_refund_event_before_our_refund_call_returned_is_counted_once(dev, unique):
    dev.world.refund_gate = gate = Gate()
    _, handle = await dev.start(payment_input(unique))
    update = await handle.start_update(
        PaymentWorkflow.refund, RefundRequest(refund_id="r1"), wait_for_stage=WorkflowUpdateStage.ACCEPTED
    )
    await asyncio.wait_for(gate.started.wait(), 10)
    await send_event(
        handle,
        gateway_event(
            "evt_r",
            GatewayEventKind.REFUND_SUCCEEDED,
            refund_id="r1",
            provider_refund_id="re_r1",
            amount=FULL,
        ),
    )
    view = await wait_for(handle, lambda v: v.refunds[0].status is RefundStatus.SUCCEEDED)
    assert view.status is PaymentStatus.REFUNDED
    gate.open.set()
    refund = await update.result()
    assert refund.status is RefundStatus.SUCCEEDED
    view = await handle.query(PaymentWorkflow.view)
    assert view.refunded_minor == 4999
    assert len(view.refunds) == 1
    assert dev.world.events().count("refund.succeeded") == 1


async def test_success_for_a_cancelled_payment_is_refunded_once(dev, unique):
    dev.world.authorize_answer = GatewayResult(
        status=GatewayPaymentStatus.AUTHORIZED, provider_payment_id="pi_1"
    )
    _, handle = await dev.start(payment_input(unique, capture_method=CaptureMethod.MANUAL))
    assert (
        await handle.execute_update(PaymentWorkflow.cancel, CancelRequest())
    ).status is PaymentStatus.CANCELLED
    # The provider captured it after all, and says so twice under different event ids.
    await signal(
        handle,
        gateway_event("evt_s1", GatewayEventKind.PAYMENT_SUCCEEDED, amount=FULL),
        lambda v: v.refunded_minor > 0,
    )
    view = await signal(
        handle,
        gateway_event("evt_s2", GatewayEventKind.PAYMENT_SUCCEEDED, amount=FULL),
        lambda v: dev.world.events().count("payment.late_success") == 2,
    )
    assert view.status is PaymentStatus.CANCELLED  # the order was released: the money goes back
    assert view.captured_minor == 4999
    assert view.refunded_minor == 4999
    [refund] = view.refunds
    assert refund.status is RefundStatus.SUCCEEDED
    [call] = dev.world.calls["refund"]
    assert call.idempotency_key == f"{workflow_id(unique)}:refund:late"
    assert call.amount == FULL
    assert dev.world.calls["confirm"] == []


async def test_success_with_another_amount_is_recorded_not_paid(dev, unique):
    dev.world.authorize_answer = GatewayResult(
        status=GatewayPaymentStatus.REQUIRES_ACTION,
        provider_payment_id="pi_1",
        next_action=NextAction(type=NextActionType.DISPLAY_QR_CODE, qr_code="weixin://pay"),
    )
    _, handle = await dev.start(payment_input(unique))
    await send_event(
        handle,
        gateway_event("evt_m", GatewayEventKind.PAYMENT_SUCCEEDED, amount=Amount(minor=1, currency="USD")),
    )
    await wait_for(handle, lambda v: "webhook.amount_mismatch" in dev.world.events())
    view = await handle.query(PaymentWorkflow.view)
    assert view.status is PaymentStatus.AUTHORIZING
    assert view.captured_minor == 0
    assert dev.world.calls["confirm"] == []
    mismatch = next(t for t in dev.world.transitions if t.events[0].type == "webhook.amount_mismatch")
    assert mismatch.events[0].data == {"event_id": "evt_m", "amount": "0.01 USD"}


async def test_refund_made_at_the_provider_is_recorded(dev, unique):
    _, handle = await dev.start(payment_input(unique))
    view = await signal(
        handle,
        gateway_event(
            "evt_x",
            GatewayEventKind.REFUND_SUCCEEDED,
            provider_refund_id="re_dash",
            amount=Amount(minor=999, currency="USD"),
        ),
        lambda v: v.refunded_minor > 0,
    )
    assert view.status is PaymentStatus.PARTIALLY_REFUNDED
    assert [(r.refund_id, r.status, r.amount.minor) for r in view.refunds] == [
        ("ext_re_dash", RefundStatus.SUCCEEDED, 999)
    ]
    # What is left to refund through us accounts for it.
    assert (
        await handle.execute_update(PaymentWorkflow.refund, RefundRequest(refund_id="r1"))
    ).amount.minor == 4000


async def test_refund_notified_before_the_payment_succeeded_is_held_then_counted_once(dev, unique):
    dev.world.authorize_answer = GatewayResult(
        status=GatewayPaymentStatus.REQUIRES_ACTION,
        provider_payment_id="pi_1",
        next_action=NextAction(type=NextActionType.DISPLAY_QR_CODE, qr_code="weixin://pay"),
    )
    _, handle = await dev.start(payment_input(unique))
    early = gateway_event(
        "evt_r",
        GatewayEventKind.REFUND_SUCCEEDED,
        provider_refund_id="re_1",
        amount=Amount(minor=999, currency="USD"),
    )
    await send_event(handle, early)
    await wait_for(handle, lambda v: "refund.held_until_paid" in dev.world.events())
    assert (await handle.query(PaymentWorkflow.view)).refunded_minor == 0
    # The success arrives; a redelivery of the refund is de-duplicated by its event id.
    view = await signal(
        handle,
        gateway_event("evt_s", GatewayEventKind.PAYMENT_SUCCEEDED, amount=FULL),
        lambda v: v.refunded_minor > 0,
    )
    await send_event(handle, early)
    assert view.status is PaymentStatus.PARTIALLY_REFUNDED
    assert [(r.provider_refund_id, r.status, r.amount.minor) for r in view.refunds] == [
        ("re_1", RefundStatus.SUCCEEDED, 999)
    ]
    assert dev.world.events().count("refund.succeeded") == 1


# ---------------------------------------------------------------- proof (issue #17 item 1)

THREE_DS = GatewayResult(
    status=GatewayPaymentStatus.REQUIRES_ACTION,
    provider_payment_id="pi_3ds",
    next_action=NextAction(type=NextActionType.REDIRECT_TO_URL, url="https://acs.example/3ds"),
)


def unverified(world) -> list[dict[str, str]]:
    return [e.data for t in world.transitions for e in t.events if e.type == "webhook.unverified"]


async def test_events_without_a_valid_proof_only_make_the_workflow_ask_the_gateway(dev, unique):
    dev.world.authorize_answer = THREE_DS
    _, handle = await dev.start(payment_input(unique))
    paid = gateway_event("evt_ok", GatewayEventKind.PAYMENT_SUCCEEDED, amount=FULL)
    forgeries = [
        paid,  # no proof: what the Temporal CLI sends
        TEST_EVENT_KEYS.prove(paid, f"{unique}-other"),  # a genuine proof, for another payment
        paid.model_copy(update={"proof": EventProof(key_id="test", mac="0" * 64)}),
        paid.model_copy(update={"proof": EventProof(key_id="made-up", mac="1" * 64)}),
    ]
    for forged in forgeries:
        await handle.signal(PaymentWorkflow.gateway_event, forged)
    await wait_for(handle, lambda _: len(unverified(dev.world)) == 4)
    assert [d["proof"] for d in unverified(dev.world)] == ["missing", "invalid", "invalid", "unknown_key"]
    view = await handle.query(PaymentWorkflow.view)
    assert (view.status, view.captured_minor) == (PaymentStatus.AUTHORIZING, 0)
    # Each one was a reason to ask the gateway, which said the customer has not finished.
    assert len(dev.world.calls["lookup"]) == 4
    # The genuine event under the same id is not taken for a duplicate of the forged ones.
    view = await signal(handle, paid, status_is(PaymentStatus.PAID))
    assert view.captured_minor == 4999


async def test_an_unproven_success_the_gateway_confirms_pays(dev, unique):
    dev.world.authorize_answer = THREE_DS
    _, handle = await dev.start(payment_input(unique))
    dev.world.lookup_answers = [
        GatewayResult(
            status=GatewayPaymentStatus.SUCCEEDED, provider_payment_id="pi_3ds", captured_minor=4999
        )
    ]
    await handle.signal(
        PaymentWorkflow.gateway_event, gateway_event("evt_ok", GatewayEventKind.PAYMENT_SUCCEEDED)
    )
    view = await wait_for(handle, status_is(PaymentStatus.PAID))
    assert view.captured_minor == 4999
    assert "webhook.unverified" in dev.world.events()


async def test_an_event_of_another_gateway_is_refused_even_with_a_proof(dev, unique):
    dev.world.authorize_answer = THREE_DS
    _, handle = await dev.start(payment_input(unique))
    stripe = gateway_event("evt_s", GatewayEventKind.PAYMENT_SUCCEEDED).model_copy(
        update={"gateway": "stripe"}
    )
    await send_event(handle, stripe)
    await wait_for(handle, lambda _: "webhook.refused" in dev.world.events())
    view = await handle.query(PaymentWorkflow.view)
    assert view.status is PaymentStatus.AUTHORIZING
    assert dev.world.calls["lookup"] == []


async def test_an_unproven_refund_event_settles_no_refund(dev, unique):
    dev.world.refund_gate = gate = Gate()
    _, handle = await dev.start(payment_input(unique))
    update = await handle.start_update(
        PaymentWorkflow.refund, RefundRequest(refund_id="r1"), wait_for_stage=WorkflowUpdateStage.ACCEPTED
    )
    await asyncio.wait_for(gate.started.wait(), 10)
    forged = gateway_event("evt_rf", GatewayEventKind.REFUND_SUCCEEDED, refund_id="r1", amount=FULL)
    await handle.signal(PaymentWorkflow.gateway_event, forged)
    await wait_for(handle, lambda _: "webhook.unverified" in dev.world.events())
    view = await handle.query(PaymentWorkflow.view)
    assert (view.refunds[0].status, view.refunded_minor, view.status) == (
        RefundStatus.PENDING,
        0,
        PaymentStatus.PAID,
    )
    # The refund's own call is in flight: the gateway's answer to it settles the refund, once.
    gate.open.set()
    assert (await update.result()).status is RefundStatus.SUCCEEDED
    assert dev.world.events().count("refund.succeeded") == 1
    assert dev.world.calls["lookup_refund"] == []
