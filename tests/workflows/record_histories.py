"""Record representative PaymentWorkflow histories for the replay test.

    python -m tests.workflows.record_histories [scenario ...]

Runs each scenario (or only the named ones) against the fake activities, to completion, and writes its history as JSON
(`WorkflowHistory.to_json()`) to tests/workflows/histories/<scenario>.json. Scenarios that need
update-with-start run on a private dev server (the same binary and tuning as the `temporal_env`
fixture) with a short settlement window; scenarios that need hours of timers run on a time-skipping
test server. Re-record only deliberately: the committed files are what running payments look like,
and the replay test holds every later version of the workflow to them (see docs/WORKFLOW_CHANGES.md).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateStage
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from tests.workflows.builders import (
    NOTIFYING_PROFILE,
    PROFILE,
    gateway_event,
    paid_view,
    payment_input,
    send_event,
    start_and_decide,
    start_then_decide,
    wait_for,
)
from tests.workflows.fake_activities import FakeWorld
from workers.temporal_binaries import dev_server_args, start_time_skipping, temporal_cli
from workflows.client import workflow_id
from workflows.domain import (
    BankTransferMethod,
    CaptureMethod,
    Failure,
    FraudDecision,
    FraudPolicy,
    NextAction,
    NextActionType,
    PaymentSettings,
    PaymentStatus,
    RefundStatus,
    ReviewDecisionKind,
    RoutingRequest,
    WalletMethod,
)
from workflows.gateway_io import GatewayEventKind, GatewayPaymentStatus, GatewayResult, RefundResult
from workflows.messages import (
    ActionCompleted,
    BankTransferReceipt,
    BankTransferResolution,
    CancelRequest,
    CaptureRequest,
    RefundRequest,
    ReviewDecision,
)
from workflows.money import Amount
from workflows.payment import PaymentWorkflow
from workflows.payment_resume import reopening
from workflows.search_attributes import ALL as SEARCH_ATTRIBUTES

HISTORIES = Path(__file__).parent / "histories"

# Long enough for a scenario's messages to land inside the window on a busy machine.
DEV_WINDOW = {"settlement_window_seconds": 5}
FULL = Amount(minor=4999, currency="USD")
PART = Amount(minor=999, currency="USD")
AUTHORIZED = GatewayResult(
    status=GatewayPaymentStatus.AUTHORIZED, provider_payment_id="pi_1", authorized_minor=4999
)
THREE_DS = GatewayResult(
    status=GatewayPaymentStatus.REQUIRES_ACTION,
    provider_payment_id="pi_3ds",
    next_action=NextAction(type=NextActionType.REDIRECT_TO_URL, url="https://acs.example/3ds"),
)
BANK_TRANSFER = GatewayResult(
    status=GatewayPaymentStatus.REQUIRES_ACTION,
    provider_payment_id="RF18539007547034",
    next_action=NextAction(
        type=NextActionType.BANK_TRANSFER_INSTRUCTIONS,
        data={"reference": "RF18539007547034", "amount": "49.99"},
    ),
)
BANK_PROFILE = PROFILE.model_copy(update={"methods": ["bank_transfer"], "action_timeout_seconds": 3600})
UNKNOWN = ApplicationError("read timeout after the request was sent", type="GatewayOutcomeUnknown")

Start = Callable[..., Awaitable[tuple[object, WorkflowHandle]]]


@dataclass(frozen=True)
class Scenario:
    name: str
    time_skipping: bool
    # Scripts the fake world, starts the payment (through `start(input)`), drives it with messages.
    drive: Callable[[FakeWorld, Start, str], Awaitable[WorkflowHandle]]

    @property
    def payment_id(self) -> str:
        return payment_id_for(self.name)


def payment_id_for(name: str) -> str:
    """The payment id a scenario runs under, from its name (and its history file's name)."""
    return f"hist-{name.replace('_', '-')}"


async def _success(world, start, pid):
    _, handle = await start(payment_input(pid, settings=DEV_WINDOW))
    return handle


async def _merchant_saved_method(world, start, pid):
    # A merchant's payment with a saved method (charged with the gateway's customer): the provider's
    # payment id is indexed as ProviderPaymentId (patch `index-provider-payment-id`).
    inp = payment_input(
        pid,
        merchant_id="acme",
        customer_id="cus-1",
        provider_customer_id="cus_provider_1",
        settings=DEV_WINDOW,
    )
    _, handle = await start(inp)
    return handle


async def _decline(world, start, pid):
    world.authorize_answer = GatewayResult(
        status=GatewayPaymentStatus.DECLINED,
        provider_payment_id="pi_1",
        failure=Failure(
            code="card_declined", message="insufficient funds", decline_code="insufficient_funds"
        ),
    )
    _, handle = await start(payment_input(pid, settings=DEV_WINDOW))
    return handle


async def _fraud_blocked(world, start, pid):
    world.fraud_score = 90
    _, handle = await start(payment_input(pid, settings=DEV_WINDOW))
    return handle


async def _fraud_screened(world, start, pid):
    # Screened by a service after the rules, paid, then disputed: feedback after each.
    world.fraud_policy = FraudPolicy(provider="sift")
    _, handle = await start(payment_input(pid, settings=DEV_WINDOW))
    await handle.signal(
        PaymentWorkflow.gateway_event,
        gateway_event(
            "evt_d1", GatewayEventKind.DISPUTE_OPENED, dispute_id="dp_1", dispute_reason="fraudulent"
        ),
    )
    await wait_for(handle, lambda v: v.status is PaymentStatus.DISPUTED)
    return handle


def _held_for_review(world):
    world.fraud_score = 60
    world.fraud_decision = FraudDecision.REVIEW
    world.fraud_policy = FraudPolicy(review_timeout_seconds=3600)
    world.authorize_answer = AUTHORIZED


async def _review_card_approved(world, start, pid):
    _held_for_review(world)
    _, handle = await start(payment_input(pid, settings=DEV_WINDOW))
    await handle.execute_update(
        PaymentWorkflow.review,
        ReviewDecision(decision=ReviewDecisionKind.APPROVE, note="known customer", decided_by="ops"),
    )
    return handle


async def _review_qr_rejected(world, start, pid):
    _held_for_review(world)
    method = WalletMethod(wallet="wechat_pay", flow="native")
    _, handle = await start(payment_input(pid, method=method, settings=DEV_WINDOW))
    await handle.execute_update(
        PaymentWorkflow.review, ReviewDecision(decision=ReviewDecisionKind.REJECT, decided_by="ops")
    )
    return handle


async def _review_timeout(world, start, pid):
    _held_for_review(world)
    _, handle = await start(payment_input(pid, settings={"settlement_window_seconds": 60}))
    return handle


async def _routed(world, start, pid):
    # No gateway named: routing moves it to the second candidate (the first's circuit is open).
    world.routed_to = PROFILE.model_copy(update={"id": "fake-backup", "name": "Fake backup"})
    _, handle = await start(payment_input(pid, routing=RoutingRequest(merchant="shop"), settings=DEV_WINDOW))
    return handle


async def _invalid_currency(world, start, pid):
    _, handle = await start(payment_input(pid, amount=Amount(minor=100, currency="EUR"), settings=DEV_WINDOW))
    return handle


async def _three_ds_action_completed(world, start, pid):
    world.authorize_answer = THREE_DS
    _, handle = await start(payment_input(pid, settings=DEV_WINDOW))
    world.lookup_answers = [GatewayResult(status=GatewayPaymentStatus.SUCCEEDED, captured_minor=4999)]
    await handle.signal(
        PaymentWorkflow.action_completed, ActionCompleted(data={"three_ds_result": "authenticated"})
    )
    return handle


async def _three_ds_webhook(world, start, pid):
    world.authorize_answer = THREE_DS
    _, handle = await start(payment_input(pid, settings=DEV_WINDOW))
    await send_event(
        handle,
        gateway_event("evt_ok", GatewayEventKind.PAYMENT_SUCCEEDED, amount=FULL),
    )
    return handle


async def _unproven_event_looked_up(world, start, pid):
    """An event without proof (as the Temporal CLI sends it) only makes the workflow ask the
    gateway; one of another gateway is refused; the genuine webhook then pays
    (patch `verified-gateway-events`)."""
    world.authorize_answer = THREE_DS
    _, handle = await start(payment_input(pid, settings=DEV_WINDOW))
    forged = gateway_event("forged-1", GatewayEventKind.PAYMENT_SUCCEEDED)
    await handle.signal(PaymentWorkflow.gateway_event, forged)
    await handle.signal(
        PaymentWorkflow.gateway_event, forged.model_copy(update={"gateway": "stripe", "event_id": "forged-2"})
    )
    await wait_for(handle, lambda _: "webhook.refused" in world.events())
    await send_event(handle, gateway_event("evt_ok", GatewayEventKind.PAYMENT_SUCCEEDED, amount=FULL))
    return handle


async def _manual_partial_capture_refunds(world, start, pid):
    world.authorize_answer = AUTHORIZED
    _, handle = await start(payment_input(pid, capture_method=CaptureMethod.MANUAL, settings=DEV_WINDOW))
    await handle.execute_update(PaymentWorkflow.capture, CaptureRequest(amount_minor=3000))
    await handle.execute_update(PaymentWorkflow.refund, RefundRequest(refund_id="r1", amount_minor=1000))
    await handle.execute_update(PaymentWorkflow.refund, RefundRequest(refund_id="r2"))
    return handle


async def _cancel_then_late_success(world, start, pid):
    world.authorize_answer = AUTHORIZED
    _, handle = await start(payment_input(pid, capture_method=CaptureMethod.MANUAL, settings=DEV_WINDOW))
    await handle.execute_update(PaymentWorkflow.cancel, CancelRequest())
    await send_event(
        handle,
        gateway_event("evt_late", GatewayEventKind.PAYMENT_SUCCEEDED, amount=FULL),
    )
    return handle


async def _dispute(world, start, pid):
    _, handle = await start(payment_input(pid, settings=DEV_WINDOW))
    await send_event(
        handle,
        gateway_event("evt_d1", GatewayEventKind.DISPUTE_OPENED, dispute_id="dp_1", amount=FULL),
    )
    await wait_for(handle, lambda v: v.status is PaymentStatus.DISPUTED)
    await send_event(
        handle,
        gateway_event("evt_d2", GatewayEventKind.DISPUTE_CLOSED, dispute_id="dp_1", dispute_status="won"),
    )
    return handle


async def _refund_before_paid(world, start, pid):
    """A refund notified before the payment's own success: held until it is paid, then counted
    (patch `hold-refund-events-until-paid`)."""
    world.authorize_answer = THREE_DS
    _, handle = await start(payment_input(pid, settings=DEV_WINDOW))
    await send_event(
        handle,
        gateway_event("evt_r", GatewayEventKind.REFUND_SUCCEEDED, provider_refund_id="re_1", amount=PART),
    )
    await wait_for(handle, lambda _: "refund.held_until_paid" in world.events())
    await send_event(
        handle,
        gateway_event("evt_ok", GatewayEventKind.PAYMENT_SUCCEEDED, amount=FULL),
    )
    return handle


async def _bank_transfer_underpaid_accepted(world, start, pid):
    # A bank transfer: instructions, an underpayment confirmed by update (held for review), accepted.
    world.authorize_answer = BANK_TRANSFER
    inp = payment_input(pid, method=BankTransferMethod(), gateway=BANK_PROFILE, settings=DEV_WINDOW)
    _, handle = await start(inp)
    receipt = BankTransferReceipt(
        amount=PART,
        bank_reference="BANK-1",
        received_at=datetime(2026, 12, 6, 9, tzinfo=UTC),
        source="statement",
        confirmed_by="statement stmt-1.xml entry BANK-1",
        payer_name="Jane Payer",
    )
    await handle.execute_update(PaymentWorkflow.confirm_bank_transfer, receipt)
    await handle.execute_update(
        PaymentWorkflow.resolve_bank_transfer, BankTransferResolution(decision="accept", decided_by="ops")
    )
    return handle


async def _three_ds_timeout(world, start, pid):
    world.authorize_answer = THREE_DS
    _, handle = await start(payment_input(pid, settings={"action_timeout_seconds": 900}))
    return handle


async def _three_ds_webhook_lost(world, start, pid):
    # 3-D Secure on a gateway that notifies it: the customer paid, but the webhook was lost and the
    # customer never came back. The gateway's answer to the wait's lookup settles it.
    world.authorize_answer = THREE_DS
    world.lookup_answers = [GatewayResult(status=GatewayPaymentStatus.SUCCEEDED, captured_minor=4999)]
    _, handle = await start(
        payment_input(pid, gateway=NOTIFYING_PROFILE, settings={"action_timeout_seconds": 900})
    )
    return handle


async def _authorization_expired(world, start, pid):
    world.authorize_answer = AUTHORIZED
    _, handle = await start(
        payment_input(pid, capture_method=CaptureMethod.MANUAL, settings={"authorization_ttl_seconds": 86400})
    )
    return handle


async def _unknown_outcome_charged(world, start, pid):
    world.authorize_error = UNKNOWN
    world.lookup_answers = [
        GatewayResult(status=GatewayPaymentStatus.SUCCEEDED, provider_payment_id="pi_9", captured_minor=4999)
    ]
    # Time skips only while a client waits for a result: start without waiting for the decision.
    _, handle = await start(payment_input(pid), decide=False)
    return handle


async def _capture_unknown_retried(world, start, pid):
    world.authorize_answer = AUTHORIZED
    world.capture_errors = {f"{workflow_id(pid)}:capture": UNKNOWN}
    world.lookup_answers = [AUTHORIZED, AUTHORIZED]
    _, handle = await start(payment_input(pid, settings={"capture_delay_seconds": 60}))
    return handle


async def _refund_unknown_polled(world, start, pid):
    world.refund_error = UNKNOWN
    world.lookup_refund_answers = [
        RefundResult(refund_id="r1", status=RefundStatus.PENDING),
        RefundResult(refund_id="r1", status=RefundStatus.SUCCEEDED, provider_refund_id="re_1"),
    ]
    _, handle = await start(payment_input(pid))
    await handle.start_update(
        PaymentWorkflow.refund, RefundRequest(refund_id="r1"), wait_for_stage=WorkflowUpdateStage.ACCEPTED
    )
    return handle


async def _continued_as_new(world, start, pid):
    """A payment living longer than one settlement period: each period is a run of its own, and the
    recorded history is the last run, which starts from the carried state (`long-lived-payments`)."""
    settings = {"settlement_window_seconds": 86400, "payment_window_seconds": 2 * 86400}
    _, handle = await start(payment_input(pid, settings=settings), decide=False)
    return handle


async def _reopened_for_late_dispute(world, start, pid):
    """A dispute for a payment whose workflow closed: a run started from the stored projection."""
    inp = reopening(paid_view(pid), PROFILE, PaymentSettings())
    _, handle = await start(inp, decide=False)
    await send_event(
        handle, gateway_event("evt_late_d", GatewayEventKind.DISPUTE_OPENED, dispute_id="dp_9", amount=FULL)
    )
    return handle


SCENARIOS = (
    Scenario("success", False, _success),
    Scenario("decline", False, _decline),
    Scenario("fraud_blocked", False, _fraud_blocked),
    Scenario("invalid_currency", False, _invalid_currency),
    Scenario("fraud_screened", False, _fraud_screened),
    Scenario("review_card_approved", False, _review_card_approved),
    Scenario("review_qr_rejected", False, _review_qr_rejected),
    Scenario("routed", False, _routed),
    Scenario("three_ds_action_completed", False, _three_ds_action_completed),
    Scenario("three_ds_webhook", False, _three_ds_webhook),
    Scenario("unproven_event_looked_up", False, _unproven_event_looked_up),
    Scenario("manual_partial_capture_refunds", False, _manual_partial_capture_refunds),
    Scenario("cancel_then_late_success", False, _cancel_then_late_success),
    Scenario("dispute", False, _dispute),
    Scenario("refund_before_paid", False, _refund_before_paid),
    Scenario("merchant_saved_method", False, _merchant_saved_method),
    Scenario("bank_transfer_underpaid_accepted", False, _bank_transfer_underpaid_accepted),
    Scenario("three_ds_timeout", True, _three_ds_timeout),
    Scenario("three_ds_webhook_lost", True, _three_ds_webhook_lost),
    Scenario("authorization_expired", True, _authorization_expired),
    Scenario("unknown_outcome_charged", True, _unknown_outcome_charged),
    Scenario("capture_unknown_retried", True, _capture_unknown_retried),
    Scenario("refund_unknown_polled", True, _refund_unknown_polled),
    Scenario("continued_as_new", True, _continued_as_new),
    Scenario("reopened_for_late_dispute", True, _reopened_for_late_dispute),
    Scenario("review_timeout", True, _review_timeout),
)


async def _record(client: Client, scenario: Scenario) -> None:
    world = FakeWorld()
    task_queue = f"record-{scenario.name}"

    async def start(inp, decide: bool = True):
        if not decide:
            handle = await client.start_workflow(
                PaymentWorkflow.run, inp, id=workflow_id(inp.payment_id), task_queue=task_queue
            )
            return None, handle
        starter = start_then_decide if scenario.time_skipping else start_and_decide
        return await starter(client, task_queue, inp)

    async with Worker(
        client, task_queue=task_queue, workflows=[PaymentWorkflow], activities=world.activities()
    ):
        handle = await scenario.drive(world, start, scenario.payment_id)
        view = await handle.result()
        history = await handle.fetch_history()
    path = HISTORIES / f"{scenario.name}.json"
    # Indented, so a re-recording shows up as a readable diff.
    path.write_text(json.dumps(json.loads(history.to_json()), indent=1) + "\n")
    print(f"{scenario.name:32} {view.status.value:20} {len(history.events):4} events  {path.name}")


async def main(names: list[str]) -> None:
    unknown = set(names) - {s.name for s in SCENARIOS}
    if unknown:
        raise SystemExit(f"no such scenario: {', '.join(sorted(unknown))}")
    scenarios = [s for s in SCENARIOS if not names or s.name in names]
    HISTORIES.mkdir(exist_ok=True)
    dev = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(),
        data_converter=pydantic_data_converter,
        search_attributes=SEARCH_ATTRIBUTES,
        dev_server_extra_args=dev_server_args(),
    )
    try:
        # Dev-server scenarios wait out real settlement windows: run them side by side.
        await asyncio.gather(*(_record(dev.client, s) for s in scenarios if not s.time_skipping))
    finally:
        await dev.shutdown()
    # One time-skipping server per scenario: its clock is shared by everything on it.
    for scenario in (s for s in scenarios if s.time_skipping):
        env = await start_time_skipping()
        try:
            await _record(env.client, scenario)
        finally:
            await env.shutdown()


if __name__ == "__main__":
    # The scenarios script gateway failures on purpose: their per-attempt warnings are noise here.
    logging.getLogger("temporalio.activity").setLevel(logging.ERROR)
    asyncio.run(main(sys.argv[1:]))
