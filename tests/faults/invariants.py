"""The verdict on a fault run, taken from the fake provider's own ledger rather than from what
durapay says about itself:

1. no stuck payment: every payment reaches the status the scenario expects (a terminal one, or a
   legitimate wait such as an authorization waiting for its capture), and the store's projection
   shows the workflow's latest version;
2. no lost webhook: every signed event Stripe sent about these payments was acknowledged (refused
   deliveries are sent again, as Stripe does), is in the inbox as signalled, and was applied by the
   payment's workflow;
3. no double charge: one PaymentIntent per payment, one charge when money moved and none when the
   payment failed, one provider refund per refund of ours;
4. the captured and refunded totals at Stripe are exactly those in our store;
5. every call that could move money carried the idempotency key `payment-<id>:<operation>`;
6. the API kept its word while things were down: every 5xx it answered, to the merchant or to
   Stripe's webhooks, was a 503 telling the caller to retry (never a 500 "internal error").
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import Any

import httpx
from temporalio.service import RPCError

from tests.faults.harness import Expect, FaultStack, wait_until
from tests.faults.report import FIGURES
from workflows.client import workflow_id
from workflows.domain import PaymentStatus, PaymentView, RefundStatus
from workflows.payment import PaymentWorkflow
from workflows.webhook_inbox import WebhookOutcome

# Statuses in which Stripe holds or has taken the customer's money.
_MONEY_HELD = frozenset(
    {
        PaymentStatus.AUTHORIZED,
        PaymentStatus.PAID,
        PaymentStatus.PARTIALLY_REFUNDED,
        PaymentStatus.REFUNDED,
        PaymentStatus.DISPUTED,
    }
)
_IN_DOUBT = frozenset({PaymentStatus.PENDING, PaymentStatus.OUTCOME_UNKNOWN})


async def check_run(
    stack: FaultStack, expected: list[Expect], *, scenario: str, settle_timeout: float = 120.0
) -> None:
    FIGURES.runs[scenario] += 1
    FIGURES.payments += len(expected)
    views = await _settled_views(stack, expected, settle_timeout)
    FIGURES.settled_after(scenario, asyncio.get_running_loop().time() - stack.fault_ended_at)
    await _no_lost_webhooks(stack, {e.payment_id for e in expected})
    problems = _unavailable_answers(stack)
    for expect in expected:
        problems += _ledger_problems(stack, expect, views[expect.payment_id])
    FIGURES.gateway_replays += sum(
        1 for r in stack.fake.requests if r.replayed and _payment_of(stack, r) in views
    )
    assert not problems, "\n".join(problems)


async def _workflow_view(stack: FaultStack, payment_id: str) -> PaymentView | None:
    try:
        return await stack.client.get_workflow_handle(workflow_id(payment_id)).query(PaymentWorkflow.view)
    except RPCError:  # Temporal restarting, or the workflow task still being retried
        return None


async def _settled_views(stack: FaultStack, expected: list[Expect], timeout: float) -> dict[str, PaymentView]:
    """Each payment's workflow view once it shows the expected status and the store caught up."""
    settled: dict[str, PaymentView] = {}
    last: dict[str, str] = {}

    async def all_settled() -> bool:
        for expect in expected:
            if expect.payment_id in settled:
                continue
            view = await _workflow_view(stack, expect.payment_id)
            stored = await stack.store.get(expect.payment_id)
            last[expect.payment_id] = (
                f"workflow {view.status.value if view else '?'} v{view.version if view else '?'}, "
                f"store {stored.status.value if stored else '?'} v{stored.version if stored else '?'}"
            )
            if view is None or stored is None or view.status is not expect.status:
                continue
            if stored.version != view.version or stored.status is not view.status:
                continue
            if any(r.status is RefundStatus.PENDING for r in view.refunds):
                continue
            settled[expect.payment_id] = view
        return len(settled) == len(expected)

    try:
        await wait_until(all_settled, timeout=timeout, what="every payment to settle")
    except AssertionError:
        stuck = [e for e in expected if e.payment_id not in settled]
        FIGURES.stuck_payments += len(stuck)
        raise AssertionError(
            f"{len(stuck)} stuck payment(s):\n"
            + "\n".join(
                f"  {e.payment_id}: expected {e.status.value}, {last.get(e.payment_id)}" for e in stuck
            )
            + "\n"
            + stack.worker.process.log_tail()
        ) from None
    for view in settled.values():
        FIGURES.outcomes[view.status.value] += 1
    return settled


def _event_payment(event: dict[str, Any]) -> str | None:
    # PaymentIntents, charges and refunds all carry our payment id in their metadata.
    return (event["data"]["object"].get("metadata") or {}).get("durapay_payment_id")


async def _no_lost_webhooks(stack: FaultStack, payment_ids: set[str], timeout: float = 60.0) -> None:
    fake = stack.fake
    await fake.wait_for_webhooks()
    events = [e for e in fake.events if _event_payment(e) in payment_ids]
    FIGURES.webhooks += len(events)

    # Stripe redelivers a webhook until the endpoint acknowledges it (with backoff, for days):
    # so does this loop, faster.
    async def all_acknowledged() -> bool:
        acknowledged = {event_id for event_id, status in fake.deliveries if 200 <= status < 300}
        missing = [e for e in events if e["id"] not in acknowledged]
        for event in missing:
            FIGURES.webhook_redeliveries += 1
            with contextlib.suppress(httpx.HTTPError):  # not acknowledged: the next round tries again
                await fake.deliver(event)
        return not missing

    await wait_until(all_acknowledged, timeout=timeout, what="every webhook to be acknowledged")

    def missing_from_inbox_or_workflow(
        outcomes: dict[str, WebhookOutcome | None], applied: set[str]
    ) -> list[str]:
        return [
            f"  {e['id']} ({e['type']}) for {_event_payment(e)}: inbox {outcomes.get(e['id'])}, "
            f"{'applied' if e['id'] in applied else 'never applied by the workflow'}"
            for e in events
            if outcomes.get(e["id"]) is not WebhookOutcome.SIGNALLED or e["id"] not in applied
        ]

    outcomes: dict[str, WebhookOutcome | None] = {}
    applied: set[str] = set()

    async def all_applied() -> bool:
        for event in events:
            outcomes[event["id"]] = await stack.store.webhook_outcome("stripe", event["id"])
        applied.clear()
        for payment_id in payment_ids:
            applied.update(
                e.data.get("event_id", "")
                for e in await stack.store.events(payment_id)
                if e.type == "webhook.received"
            )
        return not missing_from_inbox_or_workflow(outcomes, applied)

    try:
        # The workflow applies a webhook at its next step, so give it a moment after the inbox.
        await wait_until(all_applied, timeout=30, what="every webhook in the inbox and applied")
    except AssertionError:
        lost = missing_from_inbox_or_workflow(outcomes, applied)
        FIGURES.lost_webhooks += len(lost)
        raise AssertionError(f"{len(lost)} lost webhook(s):\n" + "\n".join(lost)) from None


def _unavailable_answers(stack: FaultStack) -> list[str]:
    """5xx answers other than `503 temporarily_unavailable` with a Retry-After."""
    problems = [
        f"the API answered the merchant {answer} during a fault, not 503 temporarily_unavailable"
        for answer in stack.merchant.server_errors
        if not re.fullmatch(r"503 temporarily_unavailable Retry-After: \d+", answer)
    ]
    # 0: no answer at all (the receiver still waiting on Temporal when the sender gave up).
    refused = sorted({status for _, status in stack.fake.deliveries if status >= 300 and status != 503})
    if refused:
        problems.append(f"the webhook receiver answered {refused} during a fault, not 503")
    return problems


def _payment_of(stack: FaultStack, request: Any) -> str | None:
    """Which of our payments a request to the fake concerns."""
    fake = stack.fake
    params = request.params
    if request.path == "/v1/payment_intents":
        return (params.get("metadata") or {}).get("durapay_payment_id")
    if request.path.startswith("/v1/payment_intents/"):
        intent = fake.payment_intents.get(request.path.split("/")[3])
    elif request.path == "/v1/refunds":
        intent = fake.payment_intents.get(params.get("payment_intent", ""))
    else:
        return None
    return intent["metadata"].get("durapay_payment_id") if intent else None


def _key_pattern(payment_id: str, request: Any) -> re.Pattern[str]:
    """The idempotency key a call about `payment_id` must carry: `<workflow id>:<operation>`, and
    for a capture or void sent again after the provider said the first did not happen,
    `...:<operation>:<n>`."""
    workflow = re.escape(workflow_id(payment_id))
    if request.path == "/v1/payment_intents":
        return re.compile(f"{workflow}:authorize")
    if request.path == "/v1/refunds":
        return re.compile(f"{workflow}:refund:{re.escape(request.params['metadata']['durapay_refund_id'])}")
    operation = re.escape(request.path.rsplit("/", 1)[1])  # .../capture, .../cancel
    return re.compile(f"{workflow}:{operation}(:[0-9]+)?")


def _ledger_problems(stack: FaultStack, expect: Expect, view: PaymentView) -> list[str]:
    fake = stack.fake
    pid = expect.payment_id
    problems: list[str] = []
    intents = fake.intents_for(pid)
    charges = fake.charges_for(pid)
    FIGURES.charges_per_payment[len(charges)] += 1
    if len(intents) != 1:
        problems.append(f"{pid}: {len(intents)} PaymentIntents at Stripe, expected exactly 1")
    expected_charges = 1 if expect.status in _MONEY_HELD else 0
    if len(charges) != expected_charges:
        FIGURES.double_charges += len(charges) > 1
        problems.append(f"{pid}: {len(charges)} charges at Stripe for a {view.status.value} payment")
    captured = sum(c["amount_captured"] for c in charges if c["captured"])
    refunds = [r for r in fake.refunds.values() if r["metadata"].get("durapay_payment_id") == pid]
    refunded = sum(r["amount"] for r in refunds if r["status"] == "succeeded")
    charge_refunded = sum(c["amount_refunded"] for c in charges)
    totals = {
        "captured (Stripe, store, expected)": (captured, view.captured_minor, expect.captured_minor),
        "refunded (Stripe refunds, Stripe charge, store, expected)": (
            refunded,
            charge_refunded,
            view.refunded_minor,
            expect.refunded_minor,
        ),
    }
    for name, values in totals.items():
        if len(set(values)) != 1:
            FIGURES.ledger_mismatches += 1
            problems.append(f"{pid}: {name} differ: {values}")
    if len(refunds) != len(view.refunds):
        problems.append(f"{pid}: {len(refunds)} refunds at Stripe for {len(view.refunds)} refunds of ours")
    for request in fake.requests:
        ours = request.method == "POST" and _payment_of(stack, request) == pid
        if ours and not _key_pattern(pid, request).fullmatch(request.idempotency_key or ""):
            problems.append(f"{pid}: POST {request.path} carried key {request.idempotency_key!r}")
    return problems
