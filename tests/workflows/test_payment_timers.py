"""Every timer of PaymentWorkflow, on the time-skipping test server: 3-D Secure timeout, the checks
while a customer acts (polled, or once when the gateway notifies the action), capture delay,
authorization expiry, settlement window, and retries that run out into a lookup."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.client import WorkflowUpdateStage
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from tests.workflows.builders import NOTIFYING_PROFILE, payment_input, start_then_decide
from tests.workflows.fake_activities import FakeWorld
from workflows.client import workflow_id
from workflows.domain import CaptureMethod, NextAction, NextActionType, PaymentStatus, RefundStatus
from workflows.gateway_io import GatewayPaymentStatus, GatewayResult, RefundResult
from workflows.messages import RefundRequest
from workflows.payment import PaymentWorkflow

THREE_DS = GatewayResult(
    status=GatewayPaymentStatus.REQUIRES_ACTION,
    provider_payment_id="pi_3ds",
    next_action=NextAction(type=NextActionType.REDIRECT_TO_URL, url="https://acs.example/3ds"),
)


@pytest.fixture
async def run(time_skipping_env, task_queue):
    world = FakeWorld()
    async with Worker(
        time_skipping_env.client,
        task_queue=task_queue,
        workflows=[PaymentWorkflow],
        activities=world.activities(),
    ):

        async def start(inp):
            return await start_then_decide(time_skipping_env.client, task_queue, inp)

        yield world, start, time_skipping_env


async def test_three_ds_timeout_cancels_at_gateway_and_releases_order(run, unique):
    world, start, _env = run
    world.authorize_answer = THREE_DS
    view, handle = await start(payment_input(unique, settings={"action_timeout_seconds": 900}))
    assert view.status is PaymentStatus.AUTHORIZING
    assert view.next_action.url == "https://acs.example/3ds"
    result = await handle.result()
    assert result.status is PaymentStatus.CANCELLED
    assert result.failure.code == "action_timeout"
    assert [c.reason for c in world.calls["cancel"]] == ["abandoned"]
    assert world.calls["cancel"][0].idempotency_key == f"{workflow_id(unique)}:cancel"
    assert len(world.calls["release"]) == 1
    # While waiting it asked the gateway on a backoff (30 s, 60 s, 120 s, ...), never more often.
    assert 3 <= len(world.calls["lookup"]) <= 6


async def test_customer_paying_at_the_last_moment_wins_over_the_timeout(run, unique):
    world, start, _env = run
    world.authorize_answer = THREE_DS
    world.cancel_answer = GatewayResult(status=GatewayPaymentStatus.SUCCEEDED, captured_minor=4999)
    _, handle = await start(payment_input(unique, settings={"action_timeout_seconds": 60}))
    result = await handle.result()
    assert result.status is PaymentStatus.PAID
    assert result.captured_minor == 4999
    assert world.calls["release"] == []
    assert len(world.calls["confirm"]) == 1


QR_CODE = GatewayResult(
    status=GatewayPaymentStatus.REQUIRES_ACTION,
    provider_payment_id="wx_qr",
    next_action=NextAction(type=NextActionType.DISPLAY_QR_CODE, qr_code="weixin://wxpay/bizpayurl?pr=1"),
)
PAID = GatewayResult(status=GatewayPaymentStatus.SUCCEEDED, captured_minor=4999)


def notified_input(unique):
    return payment_input(unique, gateway=NOTIFYING_PROFILE, settings={"action_timeout_seconds": 900})


async def test_notified_three_ds_wait_asks_once_halfway_then_voids_at_the_deadline(run, unique):
    world, start, env = run
    world.authorize_answer = THREE_DS
    view, handle = await start(notified_input(unique))
    assert view.status is PaymentStatus.AUTHORIZING
    await env.sleep(timedelta(seconds=440))
    assert world.calls["lookup"] == []  # no poll at 30 s, 90 s, 210 s
    await env.sleep(timedelta(seconds=20))
    assert len(world.calls["lookup"]) == 1  # the check at 450 s
    result = await handle.result()
    assert result.status is PaymentStatus.CANCELLED
    assert result.failure.code == "action_timeout"
    assert len(world.calls["lookup"]) == 1
    assert [c.reason for c in world.calls["cancel"]] == ["abandoned"]


async def test_qr_code_on_the_same_gateway_is_still_polled(run, unique):
    """The choice is the flow's: the gateway notifies its 3-D Secure, not its QR code."""
    world, start, env = run
    world.authorize_answer = QR_CODE
    await start(notified_input(unique))
    await env.sleep(timedelta(seconds=95))
    assert len(world.calls["lookup"]) == 2  # at 30 s and 90 s
    world.lookup_answers = [PAID]
    await env.sleep(timedelta(seconds=120))
    assert len(world.calls["lookup"]) == 3
    assert world.transitions[-1].view.status is PaymentStatus.PAID


async def test_lost_webhook_and_customer_gone_are_resolved_by_the_check_before_the_deadline(run, unique):
    """The single fault a notified wait must survive: the provider's webhook lost and the customer
    never back. The check halfway asks the gateway; its "paid" settles the payment, no void."""
    world, start, _env = run
    world.authorize_answer = THREE_DS
    world.lookup_answers = [PAID]
    view, handle = await start(notified_input(unique))
    result = await handle.result()
    assert result.status is PaymentStatus.PAID
    assert world.calls["cancel"] == [] and world.calls["release"] == []
    assert len(world.calls["lookup"]) == 1
    paid_at = next(t.view.updated_at for t in world.transitions if t.view.status is PaymentStatus.PAID)
    assert timedelta(seconds=450) <= paid_at - view.created_at < timedelta(seconds=900)


@pytest.mark.parametrize("refused", [False, True], ids=["void-answers-paid", "void-refused-then-lookup"])
async def test_paid_after_the_check_still_wins_over_the_deadline(run, unique, refused):
    """Paid after the halfway check, webhook lost, customer gone: the void at the deadline asks the
    gateway (its answer, or the lookup after a refused void) and "paid" wins."""
    world, start, _env = run
    world.authorize_answer = THREE_DS
    if refused:
        world.cancel_answer = GatewayResult(status=GatewayPaymentStatus.DECLINED)
        world.lookup_answers = [GatewayResult(status=GatewayPaymentStatus.REQUIRES_ACTION), PAID]
    else:
        world.cancel_answer = PAID
    _, handle = await start(notified_input(unique))
    result = await handle.result()
    assert result.status is PaymentStatus.PAID
    assert result.captured_minor == 4999
    assert world.calls["release"] == []
    assert len(world.calls["lookup"]) == (2 if refused else 1)


async def test_capture_delay_waits_then_captures(run, unique):
    world, start, env = run
    world.authorize_answer = GatewayResult(
        status=GatewayPaymentStatus.AUTHORIZED, provider_payment_id="pi_1", authorized_minor=4999
    )
    view, handle = await start(payment_input(unique, settings={"capture_delay_seconds": 3600}))
    assert view.status is PaymentStatus.AUTHORIZED
    assert world.calls["authorize"][0].capture is False
    assert world.calls["capture"] == []
    await env.sleep(timedelta(minutes=61))
    view = await handle.query(PaymentWorkflow.view)
    assert view.status is PaymentStatus.PAID
    assert world.calls["capture"][0].idempotency_key == f"{workflow_id(unique)}:capture"


async def test_authorization_never_captured_is_voided_at_expiry(run, unique):
    world, start, _env = run
    world.authorize_answer = GatewayResult(status=GatewayPaymentStatus.AUTHORIZED, provider_payment_id="pi_1")
    _, handle = await start(
        payment_input(
            unique, capture_method=CaptureMethod.MANUAL, settings={"authorization_ttl_seconds": 86400}
        )
    )
    result = await handle.result()
    assert result.status is PaymentStatus.CANCELLED
    assert result.failure.code == "authorization_expired"
    assert world.calls["capture"] == []
    assert len(world.calls["cancel"]) == 1
    assert len(world.calls["release"]) == 1


async def test_workflow_closes_when_the_settlement_window_ends(run, unique):
    _world, start, env = run
    _, handle = await start(payment_input(unique, settings={"settlement_window_seconds": 7 * 86400}))
    await env.sleep(timedelta(days=6))
    description = await handle.describe()
    assert description.status.name == "RUNNING"
    result = await handle.result()
    assert result.status is PaymentStatus.PAID


async def test_unknown_outcome_resolved_as_not_charged_only_by_lookup(run, unique, task_queue):
    world, _start, env = run
    world.authorize_error = ApplicationError("read timeout", type="GatewayOutcomeUnknown")
    world.lookup_answers = [GatewayResult(status=GatewayPaymentStatus.NOT_FOUND)]
    # Time skips only while a client waits for a result, so wait for the result, not the decision.
    handle = await env.client.start_workflow(
        PaymentWorkflow.run, payment_input(unique), id=workflow_id(unique), task_queue=task_queue
    )
    view = await handle.result()
    assert view.status is PaymentStatus.FAILED
    assert view.failure.code == "not_processed"
    assert len(world.calls["authorize"]) > 3  # retried with the same key until the deadline
    assert {c.idempotency_key for c in world.calls["authorize"]} == {f"{workflow_id(unique)}:authorize"}
    statuses = [t.view.status for t in world.transitions]
    assert PaymentStatus.OUTCOME_UNKNOWN in statuses
    assert len(world.calls["release"]) == 1


async def test_unknown_outcome_resolved_as_charged(run, unique, task_queue):
    world, _start, env = run
    world.authorize_error = ApplicationError("connection reset after send", type="GatewayOutcomeUnknown")
    world.lookup_answers = [
        GatewayResult(status=GatewayPaymentStatus.SUCCEEDED, provider_payment_id="pi_9", captured_minor=4999)
    ]
    handle = await env.client.start_workflow(
        PaymentWorkflow.run, payment_input(unique), id=workflow_id(unique), task_queue=task_queue
    )
    view = await handle.result()
    assert view.status is PaymentStatus.PAID
    assert view.provider_payment_id == "pi_9"
    assert world.calls["release"] == []


UNKNOWN = ApplicationError("read timeout after the request was sent", type="GatewayOutcomeUnknown")


async def test_capture_with_unknown_outcome_not_captured_is_sent_again_under_a_new_key(run, unique):
    """Retries ran out and the provider says the money is only held: the payment must not stay
    authorized for good. It asks again later and captures under a new key."""
    world, start, _env = run
    world.authorize_answer = GatewayResult(
        status=GatewayPaymentStatus.AUTHORIZED, provider_payment_id="pi_1", authorized_minor=4999
    )
    world.capture_errors = {f"{workflow_id(unique)}:capture": UNKNOWN}
    held = GatewayResult(
        status=GatewayPaymentStatus.AUTHORIZED, provider_payment_id="pi_1", authorized_minor=4999
    )
    world.lookup_answers = [held, held]  # after the unknown outcome, and before trying again
    _, handle = await start(payment_input(unique, settings={"capture_delay_seconds": 60}))
    result = await handle.result()
    assert result.status is PaymentStatus.PAID
    assert result.captured_minor == 4999
    keys = [c.idempotency_key for c in world.calls["capture"]]
    assert set(keys[:-1]) == {f"{workflow_id(unique)}:capture"} and len(keys) > 2
    assert keys[-1] == f"{workflow_id(unique)}:capture:2"
    events = world.events()
    assert (
        events.index("payment.capture_outcome_unknown")
        < events.index("payment.capture_pending")
        < events.index("payment.completed")
    )
    assert world.calls["cancel"] == []


async def test_void_with_unknown_outcome_still_held_ends_cancelled_not_authorized(run, unique):
    world, start, _env = run
    world.authorize_answer = GatewayResult(status=GatewayPaymentStatus.AUTHORIZED, provider_payment_id="pi_1")
    world.cancel_error = UNKNOWN
    world.lookup_answers = [GatewayResult(status=GatewayPaymentStatus.AUTHORIZED, provider_payment_id="pi_1")]
    _, handle = await start(
        payment_input(
            unique, capture_method=CaptureMethod.MANUAL, settings={"authorization_ttl_seconds": 3600}
        )
    )
    result = await handle.result()
    assert result.status is PaymentStatus.CANCELLED
    assert result.failure.code == "authorization_expired"
    assert world.calls["capture"] == []
    assert len(world.calls["release"]) == 1


@pytest.mark.parametrize("window_seconds", [3600, 60], ids=["within-window", "past-window"])
async def test_refund_with_unknown_outcome_is_resolved_by_the_settlement_loop(run, unique, window_seconds):
    """The refund call's retries run out (5 minutes): the refund stays pending, and the settlement
    loop asks the gateway about it, on a backoff, past the end of the window if it has to."""
    world, start, _env = run
    world.refund_error = UNKNOWN
    world.lookup_refund_answers = [
        RefundResult(refund_id="r1", status=RefundStatus.PENDING),
        RefundResult(refund_id="r1", status=RefundStatus.PENDING),
        RefundResult(refund_id="r1", status=RefundStatus.SUCCEEDED, provider_refund_id="re_1"),
    ]
    _, handle = await start(payment_input(unique, settings={"settlement_window_seconds": window_seconds}))
    update = await handle.start_update(
        PaymentWorkflow.refund, RefundRequest(refund_id="r1"), wait_for_stage=WorkflowUpdateStage.ACCEPTED
    )
    result = await handle.result()
    assert (await update.result()).status is RefundStatus.PENDING  # what the caller learnt at the time
    assert result.status is PaymentStatus.REFUNDED
    assert [(r.status, r.provider_refund_id) for r in result.refunds] == [(RefundStatus.SUCCEEDED, "re_1")]
    assert result.refunded_minor == 4999
    assert len(world.calls["lookup_refund"]) == 3
    assert len(world.calls["refund"]) > 3
    assert {c.idempotency_key for c in world.calls["refund"]} == {f"{workflow_id(unique)}:refund:r1"}
    # A poll that learns nothing new records nothing.
    assert world.events().count("refund.pending") == 1
