"""PaymentWorkflow's main path on the real dev server with fake activities: checks before the
gateway, declines, 3-D Secure completed by the customer or by a webhook, and the decision update."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.client import WithStartWorkflowOperation, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError

from tests.workflows.builders import PROFILE, gateway_event, payment_input, send_event, wait_for
from tests.workflows.fake_activities import Gate
from workflows.client import workflow_id
from workflows.domain import (
    CaptureMethod,
    Failure,
    NextAction,
    NextActionType,
    PaymentStatus,
    WalletMethod,
)
from workflows.gateway_io import GatewayEventKind, GatewayPaymentStatus, GatewayResult
from workflows.ledger_io import OrderRefusal, ReservationResult
from workflows.messages import ActionCompleted, DecisionRequest
from workflows.money import Amount
from workflows.payment import PaymentWorkflow
from workflows.rejections import Rejection

THREE_DS = GatewayResult(
    status=GatewayPaymentStatus.REQUIRES_ACTION,
    provider_payment_id="pi_3ds",
    next_action=NextAction(type=NextActionType.REDIRECT_TO_URL, url="https://acs.example/3ds"),
)


async def test_decline_fails_the_payment_and_releases_the_order(dev, unique):
    dev.world.authorize_answer = GatewayResult(
        status=GatewayPaymentStatus.DECLINED,
        provider_payment_id="pi_1",
        failure=Failure(
            code="card_declined", message="insufficient funds", decline_code="insufficient_funds"
        ),
    )
    view, _ = await dev.start(payment_input(unique))
    assert view.status is PaymentStatus.FAILED
    assert view.failure.decline_code == "insufficient_funds"
    assert [r.order_id for r in dev.world.calls["release"]] == [f"order-{unique}"]
    assert dev.world.calls["confirm"] == []
    assert dev.world.events()[-1] == "payment.failed"


async def test_refusal_of_the_request_by_the_provider_is_a_decline(dev, unique):
    dev.world.authorize_error = ApplicationError(
        "bad token", type="GatewayInvalidRequest", non_retryable=True
    )
    view, _ = await dev.start(payment_input(unique))
    assert view.status is PaymentStatus.FAILED
    assert view.failure.code == "gateway_invalid_request"
    assert len(dev.world.calls["authorize"]) == 1  # non-retryable: asked once
    assert len(dev.world.calls["release"]) == 1


async def test_fraud_score_above_the_threshold_blocks_before_the_gateway(dev, unique):
    # The fake's own decision is "allow" below 76: the block comes from the configured threshold.
    dev.world.fraud_score = 60
    view, _ = await dev.start(payment_input(unique, settings={"risk_threshold": 50}))
    assert view.status is PaymentStatus.FAILED
    assert view.failure.code == "blocked_by_fraud_check"
    assert view.fraud.score == 60
    assert dev.world.calls["authorize"] == []
    assert len(dev.world.calls["release"]) == 1  # the reservation is given back


async def test_fraud_score_at_the_threshold_is_allowed(dev, unique):
    dev.world.fraud_score = 50
    view, _ = await dev.start(payment_input(unique, settings={"risk_threshold": 50}))
    assert view.status is PaymentStatus.PAID
    assert len(dev.world.calls["authorize"]) == 1


async def test_order_refusal_fails_without_releasing_what_was_never_reserved(dev, unique):
    dev.world.reservation = ReservationResult(
        accepted=False, refusal=OrderRefusal.ALREADY_PAID, message="paid"
    )
    view, _ = await dev.start(payment_input(unique))
    assert view.status is PaymentStatus.FAILED
    assert view.failure.code == "order_already_paid"
    assert dev.world.calls["release"] == []
    assert dev.world.calls["fraud"] == []
    assert dev.world.calls["authorize"] == []


@pytest.mark.parametrize(
    "overrides, code",
    [
        ({"amount": Amount(minor=100, currency="EUR")}, "currency_not_supported"),
        ({"method": WalletMethod(wallet="alipay")}, "payment_method_not_supported"),
        ({"amount": Amount(minor=0, currency="USD")}, "invalid_amount"),
        ({"gateway": PROFILE.model_copy(update={"min_minor": 5000})}, "amount_too_small"),
        ({"gateway": PROFILE.model_copy(update={"max_minor": 4998})}, "amount_too_large"),
        (
            {
                "gateway": PROFILE.model_copy(update={"supports_manual_capture": False}),
                "capture_method": CaptureMethod.MANUAL,
            },
            "manual_capture_not_supported",
        ),
    ],
)
async def test_invalid_payment_fails_before_any_activity(dev, unique, overrides, code):
    view, _ = await dev.start(payment_input(unique, **overrides))
    assert view.status is PaymentStatus.FAILED
    assert view.failure.code == code
    # Only the store heard of it: no order, fraud or gateway step ran.
    assert set(dev.world.calls) == set()
    assert dev.world.events() == ["payment.failed"]


async def test_three_ds_completed_by_the_customer_is_confirmed_by_a_lookup(dev, unique):
    dev.world.authorize_answer = THREE_DS
    view, handle = await dev.start(payment_input(unique))
    assert view.status is PaymentStatus.AUTHORIZING
    assert view.next_action.url == "https://acs.example/3ds"
    dev.world.lookup_answers = [GatewayResult(status=GatewayPaymentStatus.SUCCEEDED, captured_minor=4999)]
    await handle.signal(
        PaymentWorkflow.action_completed, ActionCompleted(data={"three_ds_result": "authenticated"})
    )
    view = await wait_for(handle, lambda v: v.status is PaymentStatus.PAID)
    assert view.next_action is None
    [lookup] = dev.world.calls["lookup"]
    assert lookup.action_data == {"three_ds_result": "authenticated"}
    assert lookup.provider_payment_id == "pi_3ds"
    assert len(dev.world.calls["confirm"]) == 1


async def test_three_ds_completed_by_a_webhook_needs_no_lookup(dev, unique):
    dev.world.authorize_answer = THREE_DS
    _, handle = await dev.start(payment_input(unique))
    await send_event(
        handle,
        gateway_event(
            "evt_ok", GatewayEventKind.PAYMENT_SUCCEEDED, amount=Amount(minor=4999, currency="USD")
        ),
    )
    view = await wait_for(handle, lambda v: v.status is PaymentStatus.PAID)
    assert view.captured_minor == 4999
    assert dev.world.calls["lookup"] == []
    assert len(dev.world.calls["confirm"]) == 1


async def test_webhook_arriving_while_authorize_runs_is_applied_after_it(dev, unique):
    """The provider's webhook can beat the authorize response: the workflow is not waiting for it
    yet, so it must keep the event and apply it once the authorize result is in."""
    dev.world.authorize_answer = THREE_DS
    dev.world.authorize_gate = gate = Gate()
    inp = payment_input(unique)
    start = asyncio.create_task(dev.start(inp))
    await asyncio.wait_for(gate.started.wait(), 10)
    handle = dev.client.get_workflow_handle(workflow_id(unique))
    await send_event(
        handle,
        gateway_event(
            "evt_early", GatewayEventKind.PAYMENT_SUCCEEDED, amount=Amount(minor=4999, currency="USD")
        ),
    )
    gate.open.set()
    await start
    view = await wait_for(handle, lambda v: v.status is PaymentStatus.PAID)
    assert view.captured_minor == 4999
    assert dev.world.calls["lookup"] == []
    events = dev.world.events()
    # Authorize's answer first, then the webhook that had been waiting.
    assert (
        events.index("payment.requires_action")
        < events.index("webhook.received")
        < events.index("payment.completed")
    )


async def test_the_same_event_id_is_applied_once(dev, unique):
    _, handle = await dev.start(payment_input(unique))
    made_at_provider = gateway_event(
        "evt_1",
        GatewayEventKind.REFUND_SUCCEEDED,
        provider_refund_id="re_dash",
        amount=Amount(minor=1000, currency="USD"),
    )
    await send_event(handle, made_at_provider)
    await send_event(handle, made_at_provider)
    await send_event(
        handle,
        gateway_event("evt_2", GatewayEventKind.DISPUTE_OPENED, dispute_id="dp_1"),
    )
    # Signals are applied in order: once evt_2 shows, both evt_1 deliveries have been handled.
    view = await wait_for(handle, lambda v: bool(v.disputes))
    received = [
        t.events[0].data["event_id"] for t in dev.world.transitions if t.events[0].type == "webhook.received"
    ]
    assert received == ["evt_1", "evt_2"]
    assert view.refunded_minor == 1000
    assert len(view.refunds) == 1


async def test_decide_with_another_request_under_the_same_key_is_rejected(dev, unique):
    inp = payment_input(unique)
    view, _ = await dev.start(inp)
    assert view.status is PaymentStatus.PAID
    other = inp.model_copy(
        update={"request_fingerprint": "fp-other", "amount": Amount(minor=1, currency="USD")}
    )
    op = WithStartWorkflowOperation(
        PaymentWorkflow.run,
        other,
        id=workflow_id(unique),
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        task_queue=dev.task_queue,
    )
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await dev.client.execute_update_with_start_workflow(
            PaymentWorkflow.decide,
            DecisionRequest(request_fingerprint="fp-other"),
            start_workflow_operation=op,
        )
    assert err.value.cause.type == Rejection.IDEMPOTENCY_KEY_REUSED
    # The running payment is untouched and no second authorization was made.
    assert len(dev.world.calls["authorize"]) == 1
    assert (await (await op.workflow_handle()).query(PaymentWorkflow.view)).amount.minor == 4999
