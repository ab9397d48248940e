"""Manual review: a payment the fraud check holds waits for an operator's `review` update.

Cards are authorized (not captured) while they wait: approve captures, reject voids. Redirect / QR
methods create nothing at the provider until approved. No decision before the deadline rejects
(time-skipping server). Every decision is recorded with who made it."""

from __future__ import annotations

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from tests.workflows.builders import payment_input, start_then_decide, wait_for
from tests.workflows.fake_activities import FakeWorld
from workflows.domain import (
    CaptureMethod,
    FraudDecision,
    FraudPolicy,
    PaymentStatus,
    ReviewDecisionKind,
    WalletMethod,
)
from workflows.gateway_io import GatewayPaymentStatus, GatewayResult
from workflows.messages import CancelRequest, ReviewDecision
from workflows.payment import PaymentWorkflow

AUTHORIZED = GatewayResult(
    status=GatewayPaymentStatus.AUTHORIZED, provider_payment_id="pi_1", authorized_minor=4999
)
QR = WalletMethod(wallet="wechat_pay", flow="native")
APPROVE = ReviewDecision(decision=ReviewDecisionKind.APPROVE, note="known customer", decided_by="ops-key")
REJECT = ReviewDecision(decision=ReviewDecisionKind.REJECT, note="stolen card", decided_by="ops-key")


def held(world: FakeWorld, timeout_seconds: int = 24 * 3600) -> None:
    """The rules say review, with a policy (the version that knows reviews)."""
    world.fraud_score = 60
    world.fraud_decision = FraudDecision.REVIEW
    world.fraud_policy = FraudPolicy(review_timeout_seconds=timeout_seconds)
    world.authorize_answer = AUTHORIZED


async def test_card_is_authorized_not_captured_and_approval_captures(dev, unique):
    held(dev.world)
    view, handle = await dev.start(payment_input(f"pay_{unique}"))
    assert view.status is PaymentStatus.REQUIRES_REVIEW
    [authorize] = dev.world.calls["authorize"]
    assert authorize.capture is False  # held: authorized only
    assert dev.world.calls["capture"] == []
    assert view.review is not None and view.review.decision is None

    view = await handle.execute_update(PaymentWorkflow.review, APPROVE)
    assert view.status is PaymentStatus.PAID
    assert len(dev.world.calls["capture"]) == 1
    assert view.review is not None
    assert (view.review.decision, view.review.decided_by, view.review.note) == (
        ReviewDecisionKind.APPROVE,
        "ops-key",
        "known customer",
    )
    events = dev.world.events()
    assert (
        events.index("review.requested") < events.index("review.approved") < events.index("payment.captured")
    )
    [approved] = [e for t in dev.world.transitions for e in t.events if e.type == "review.approved"]
    assert approved.data == {"decided_by": "ops-key", "note": "known customer"}


async def test_card_rejected_is_voided_and_the_order_released(dev, unique):
    held(dev.world)
    _, handle = await dev.start(payment_input(f"pay_{unique}"))
    view = await handle.execute_update(PaymentWorkflow.review, REJECT)
    assert view.status is PaymentStatus.CANCELLED
    assert view.failure is not None and view.failure.code == "rejected_in_review"
    assert len(dev.world.calls["cancel"]) == 1
    assert len(dev.world.calls["release"]) == 1
    assert dev.world.calls["capture"] == []


async def test_manual_capture_after_approval_is_the_merchants(dev, unique):
    held(dev.world)
    _, handle = await dev.start(payment_input(f"pay_{unique}", capture_method=CaptureMethod.MANUAL))
    view = await handle.execute_update(PaymentWorkflow.review, APPROVE)
    assert view.status is PaymentStatus.AUTHORIZED
    assert dev.world.calls["capture"] == []


async def test_qr_payment_is_not_created_at_the_provider_before_approval(dev, unique):
    held(dev.world)
    dev.world.authorize_answer = GatewayResult(
        status=GatewayPaymentStatus.SUCCEEDED, provider_payment_id="wx_1"
    )
    view, handle = await dev.start(payment_input(f"pay_{unique}", method=QR))
    assert view.status is PaymentStatus.REQUIRES_REVIEW
    assert dev.world.calls["authorize"] == []
    view = await handle.execute_update(PaymentWorkflow.review, APPROVE)
    assert view.status is PaymentStatus.PAID
    assert len(dev.world.calls["authorize"]) == 1


async def test_qr_payment_rejected_never_reaches_the_provider(dev, unique):
    held(dev.world)
    _, handle = await dev.start(payment_input(f"pay_{unique}", method=QR))
    view = await handle.execute_update(PaymentWorkflow.review, REJECT)
    assert view.status is PaymentStatus.CANCELLED
    assert dev.world.calls["authorize"] == [] and dev.world.calls["cancel"] == []
    assert len(dev.world.calls["release"]) == 1


async def test_an_update_without_an_operator_is_recorded_as_the_temporal_ui(dev, unique):
    held(dev.world)
    _, handle = await dev.start(payment_input(f"pay_{unique}"))
    view = await handle.execute_update(
        PaymentWorkflow.review, ReviewDecision(decision=ReviewDecisionKind.APPROVE)
    )
    assert view.review is not None and view.review.decided_by == "temporal-ui"


async def test_review_is_refused_unless_the_payment_waits_for_one(dev, unique):
    _, handle = await dev.start(payment_input(f"pay_{unique}"))  # allowed: paid at once
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await handle.execute_update(PaymentWorkflow.review, APPROVE)
    assert isinstance(err.value.cause, ApplicationError) and err.value.cause.type == "InvalidState"


async def test_a_second_decision_is_refused(dev, unique):
    held(dev.world)
    _, handle = await dev.start(payment_input(f"pay_{unique}", capture_method=CaptureMethod.MANUAL))
    await handle.execute_update(PaymentWorkflow.review, APPROVE)
    with pytest.raises(WorkflowUpdateFailedError):
        await handle.execute_update(PaymentWorkflow.review, REJECT)


async def test_cancel_during_review_voids(dev, unique):
    held(dev.world)
    _, handle = await dev.start(payment_input(f"pay_{unique}"))
    view = await handle.execute_update(PaymentWorkflow.cancel, CancelRequest(reason="requested_by_customer"))
    assert view.status is PaymentStatus.CANCELLED
    assert view.review is not None and view.review.decided_by == "cancel"
    assert len(dev.world.calls["cancel"]) == 1


async def test_rules_without_a_policy_do_not_hold(dev, unique):
    # A result recorded before reviews existed: the payment goes on, as it did then.
    dev.world.fraud_decision = FraudDecision.REVIEW
    view, _ = await dev.start(payment_input(f"pay_{unique}"))
    assert view.status is PaymentStatus.PAID


async def test_no_decision_before_the_deadline_rejects(time_skipping_env, task_queue, unique):
    world = FakeWorld()
    held(world, timeout_seconds=24 * 3600)
    async with Worker(
        time_skipping_env.client,
        task_queue=task_queue,
        workflows=[PaymentWorkflow],
        activities=world.activities(),
    ):
        view, handle = await start_then_decide(
            time_skipping_env.client, task_queue, payment_input(f"pay_{unique}")
        )
        assert view.status is PaymentStatus.REQUIRES_REVIEW
        await time_skipping_env.sleep(24 * 3600 + 60)
        view = await wait_for(handle, lambda v: v.status is PaymentStatus.CANCELLED)
    assert view.failure is not None and view.failure.code == "review_timeout"
    assert view.review is not None and view.review.decided_by == "timeout"
    assert len(world.calls["cancel"]) == 1 and len(world.calls["release"]) == 1
    assert "review.expired" in world.events()
