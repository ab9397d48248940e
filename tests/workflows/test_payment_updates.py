"""PaymentWorkflow's updates on the real dev server with fake activities: capture, cancel, refund,
their validators' rejections, and what a rejected update leaves unchanged."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType, UpdateWorkflowExecutionLifecycleStage
from temporalio.api.update.v1 import UpdateRef, WaitPolicy
from temporalio.api.workflowservice.v1 import PollWorkflowExecutionUpdateRequest
from temporalio.client import WorkflowUpdateFailedError, WorkflowUpdateStage
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from tests.workflows.builders import payment_input
from tests.workflows.conftest import DevRun, assert_versions_increase
from tests.workflows.fake_activities import Gate
from workflows.client import workflow_id
from workflows.domain import CaptureMethod, PaymentStatus, RefundStatus
from workflows.gateway_io import GatewayPaymentStatus, GatewayResult
from workflows.messages import CancelRequest, CaptureRequest, RefundRequest
from workflows.payment import PaymentWorkflow
from workflows.rejections import Rejection

AUTHORIZED = GatewayResult(
    status=GatewayPaymentStatus.AUTHORIZED, provider_payment_id="pi_1", authorized_minor=4999
)


def manual(payment_id: str):
    return payment_input(payment_id, capture_method=CaptureMethod.MANUAL)


async def rejected(update) -> str:
    """Run an update expected to fail; its rejection type."""
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await update
    assert isinstance(err.value.cause, ApplicationError)
    return err.value.cause.type


async def test_manual_capture_of_the_whole_authorization(dev, unique):
    dev.world.authorize_answer = AUTHORIZED
    view, handle = await dev.start(manual(unique))
    assert view.status is PaymentStatus.AUTHORIZED
    assert dev.world.calls["authorize"][0].capture is False
    view = await handle.execute_update(PaymentWorkflow.capture, CaptureRequest())
    assert view.status is PaymentStatus.PAID
    assert view.captured_minor == 4999
    [call] = dev.world.calls["capture"]
    assert call.amount.minor == 4999
    assert call.provider_payment_id == "pi_1"
    assert call.idempotency_key == f"{workflow_id(unique)}:capture"
    assert len(dev.world.calls["confirm"]) == 1


async def test_partial_capture_bounds_what_can_be_refunded(dev, unique):
    dev.world.authorize_answer = AUTHORIZED
    _, handle = await dev.start(manual(unique))
    view = await handle.execute_update(PaymentWorkflow.capture, CaptureRequest(amount_minor=3000))
    assert view.status is PaymentStatus.PAID
    assert view.captured_minor == 3000
    assert dev.world.calls["capture"][0].amount.minor == 3000
    rejection = await rejected(
        handle.execute_update(PaymentWorkflow.refund, RefundRequest(refund_id="r1", amount_minor=3001))
    )
    assert rejection == Rejection.AMOUNT_EXCEEDS
    refund = await handle.execute_update(PaymentWorkflow.refund, RefundRequest(refund_id="r2"))
    assert refund.amount.minor == 3000
    assert (await handle.query(PaymentWorkflow.view)).status is PaymentStatus.REFUNDED


async def test_over_capture_is_rejected_and_changes_nothing(dev, unique):
    dev.world.authorize_answer = AUTHORIZED
    before, handle = await dev.start(manual(unique))
    rejection = await rejected(
        handle.execute_update(PaymentWorkflow.capture, CaptureRequest(amount_minor=5000))
    )
    assert rejection == Rejection.AMOUNT_EXCEEDS
    assert await handle.query(PaymentWorkflow.view) == before
    assert dev.world.calls["capture"] == []
    # The authorization is still there to be captured properly.
    assert (
        await handle.execute_update(PaymentWorkflow.capture, CaptureRequest())
    ).status is PaymentStatus.PAID


async def test_capture_of_an_automatic_payment_is_rejected(dev, unique):
    _, handle = await dev.start(payment_input(unique))
    rejection = await rejected(handle.execute_update(PaymentWorkflow.capture, CaptureRequest()))
    assert rejection == Rejection.INVALID_STATE
    assert dev.world.calls["capture"] == []


async def test_cancel_before_capture_voids_and_releases_the_order(dev, unique):
    dev.world.authorize_answer = AUTHORIZED
    _, handle = await dev.start(manual(unique))
    view = await handle.execute_update(PaymentWorkflow.cancel, CancelRequest(reason="requested_by_customer"))
    assert view.status is PaymentStatus.CANCELLED
    assert view.failure.code == "cancelled"
    [void] = dev.world.calls["cancel"]
    assert void.reason == "requested_by_customer"
    assert void.provider_payment_id == "pi_1"
    assert void.idempotency_key == f"{workflow_id(unique)}:cancel"
    assert len(dev.world.calls["release"]) == 1
    assert dev.world.calls["capture"] == []
    assert dev.world.calls["confirm"] == []


async def test_cancel_of_a_paid_payment_is_rejected(dev, unique):
    before, handle = await dev.start(payment_input(unique))
    rejection = await rejected(handle.execute_update(PaymentWorkflow.cancel, CancelRequest()))
    assert rejection == Rejection.INVALID_STATE
    assert await handle.query(PaymentWorkflow.view) == before
    assert dev.world.calls["cancel"] == []


async def test_partial_refunds_up_to_the_captured_amount(dev, unique):
    _, handle = await dev.start(payment_input(unique))
    first = await handle.execute_update(
        PaymentWorkflow.refund, RefundRequest(refund_id="r1", amount_minor=1000)
    )
    assert first.status is RefundStatus.SUCCEEDED
    assert first.provider_refund_id == "re_r1"
    assert (await handle.query(PaymentWorkflow.view)).status is PaymentStatus.PARTIALLY_REFUNDED
    await handle.execute_update(PaymentWorkflow.refund, RefundRequest(refund_id="r2", amount_minor=2999))
    last = await handle.execute_update(PaymentWorkflow.refund, RefundRequest(refund_id="r3"))  # what is left
    assert last.amount.minor == 1000
    view = await handle.query(PaymentWorkflow.view)
    assert view.status is PaymentStatus.REFUNDED
    assert view.refunded_minor == 4999
    assert [c.idempotency_key for c in dev.world.calls["refund"]] == [
        f"{workflow_id(unique)}:refund:r1",
        f"{workflow_id(unique)}:refund:r2",
        f"{workflow_id(unique)}:refund:r3",
    ]
    assert (
        await rejected(handle.execute_update(PaymentWorkflow.refund, RefundRequest(refund_id="r4")))
        == Rejection.AMOUNT_EXCEEDS
    )


async def test_over_refund_is_rejected_and_changes_nothing(dev, unique):
    _, handle = await dev.start(payment_input(unique))
    await handle.execute_update(PaymentWorkflow.refund, RefundRequest(refund_id="r1", amount_minor=4000))
    before = await handle.query(PaymentWorkflow.view)
    rejection = await rejected(
        handle.execute_update(PaymentWorkflow.refund, RefundRequest(refund_id="r2", amount_minor=1000))
    )
    assert rejection == Rejection.AMOUNT_EXCEEDS
    assert await handle.query(PaymentWorkflow.view) == before
    assert len(dev.world.calls["refund"]) == 1


async def test_refund_before_the_payment_is_paid_is_rejected(dev, unique):
    dev.world.authorize_answer = AUTHORIZED
    _, handle = await dev.start(manual(unique))
    rejection = await rejected(handle.execute_update(PaymentWorkflow.refund, RefundRequest(refund_id="r1")))
    assert rejection == Rejection.INVALID_STATE
    assert dev.world.calls["refund"] == []


async def test_a_replayed_refund_id_answers_with_the_same_refund(dev, unique):
    _, handle = await dev.start(payment_input(unique))
    first = await handle.execute_update(
        PaymentWorkflow.refund, RefundRequest(refund_id="r1", amount_minor=1000), id="u1"
    )
    # Another update id (e.g. a retried API call), same refund id: same refund, no second call.
    again = await handle.execute_update(
        PaymentWorkflow.refund, RefundRequest(refund_id="r1", amount_minor=1000), id="u2"
    )
    assert again == first
    assert len(dev.world.calls["refund"]) == 1
    assert (await handle.query(PaymentWorkflow.view)).refunded_minor == 1000


async def test_refund_refused_by_the_provider_fails_and_is_not_counted(dev, unique):
    dev.world.refund_error = ApplicationError(
        "charge already refunded", type="GatewayInvalidRequest", non_retryable=True
    )
    _, handle = await dev.start(payment_input(unique))
    refund = await handle.execute_update(PaymentWorkflow.refund, RefundRequest(refund_id="r1"))
    assert refund.status is RefundStatus.FAILED
    assert refund.failure.code == "gateway_invalid_request"
    assert len(dev.world.calls["refund"]) == 1
    view = await handle.query(PaymentWorkflow.view)
    assert view.status is PaymentStatus.PAID
    assert view.refunded_minor == 0
    # A failed refund reserves nothing: the whole amount can still be refunded.
    dev.world.refund_error = None
    assert (
        await handle.execute_update(PaymentWorkflow.refund, RefundRequest(refund_id="r2"))
    ).amount.minor == 4999


async def admitted(client, workflow_id: str, update_id: str) -> None:
    """Wait until the server holds the update (admitted), whatever no worker has done with it yet."""
    request = PollWorkflowExecutionUpdateRequest(
        namespace=client.namespace,
        update_ref=UpdateRef(
            workflow_execution=WorkflowExecution(workflow_id=workflow_id), update_id=update_id
        ),
        wait_policy=WaitPolicy(
            lifecycle_stage=UpdateWorkflowExecutionLifecycleStage.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_ADMITTED
        ),
    )
    async with asyncio.timeout(15):
        while True:
            try:
                response = await client.workflow_service.poll_workflow_execution_update(request)
            except RPCError as err:
                if err.status is not RPCStatusCode.NOT_FOUND:  # NOT_FOUND: not at the server yet
                    raise
            else:
                if response.stage >= request.wait_policy.lifecycle_stage:
                    return
            await asyncio.sleep(0.05)


async def test_refunds_delivered_together_never_exceed_the_captured_amount(temporal_env, task_queue, unique):
    """Two refunds that each fit what is left, but not together, reaching the workflow in one task:
    the SDK runs each validator right before its handler, and the handler books the refund before
    its first await, so the second validator already sees the first refund."""
    run = DevRun(temporal_env.client, task_queue)
    async with run.worker():
        _, handle = await run.start(payment_input(unique))
    # With no worker polling, both updates wait at the server and arrive in one workflow task.
    updates = [
        asyncio.create_task(
            handle.start_update(
                PaymentWorkflow.refund,
                RefundRequest(refund_id=f"r{i}", amount_minor=3000),
                id=f"refund-{i}",
                wait_for_stage=WorkflowUpdateStage.ACCEPTED,
            )
        )
        for i in (1, 2)
    ]
    for update_id in ("refund-1", "refund-2"):
        await admitted(temporal_env.client, handle.id, update_id)
    async with run.worker():
        outcomes = []
        for task in updates:
            try:
                outcomes.append((await (await task).result()).status.value)
            except WorkflowUpdateFailedError as err:
                outcomes.append(err.cause.type)
        view = await handle.query(PaymentWorkflow.view)
        await handle.terminate()
    assert sorted(outcomes) == sorted([RefundStatus.SUCCEEDED.value, Rejection.AMOUNT_EXCEEDS.value])
    assert view.refunded_minor == 3000
    assert len(run.world.calls["refund"]) == 1
    assert_versions_increase(run.world)


async def settlement_window_ended(handle) -> bool:
    """Whether the settlement window's timer has fired and a workflow task has completed since."""
    window_timers: set[str] = set()
    fired = False
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_TIMER_STARTED:
            if b"settlement window" in event.user_metadata.summary.data:
                window_timers.add(event.timer_started_event_attributes.timer_id)
        elif event.event_type == EventType.EVENT_TYPE_TIMER_FIRED:
            fired = fired or event.timer_fired_event_attributes.timer_id in window_timers
        elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED and fired:
            return True
    return False


async def test_payment_waits_for_a_refund_in_flight_before_it_closes(dev, unique):
    """Nothing is lost when the settlement window ends while a refund is at the gateway."""
    dev.world.refund_gate = gate = Gate()
    _, handle = await dev.start(payment_input(unique, settings={"settlement_window_seconds": 2}))
    update = await handle.start_update(
        PaymentWorkflow.refund, RefundRequest(refund_id="r1"), wait_for_stage=WorkflowUpdateStage.ACCEPTED
    )
    await asyncio.wait_for(gate.started.wait(), 10)
    # Past the window: its timer has fired and the workflow has acted on it.
    async with asyncio.timeout(15):
        while not await settlement_window_ended(handle):  # noqa: ASYNC110 (polls the history)
            await asyncio.sleep(0.1)
    assert (await handle.describe()).status.name == "RUNNING"
    gate.open.set()
    assert (await update.result()).status is RefundStatus.SUCCEEDED
    result = await handle.result()
    assert result.status is PaymentStatus.REFUNDED
    assert result.refunded_minor == 4999
