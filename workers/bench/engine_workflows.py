"""The trivial workflows the engine scenarios measure: the same five steps as a happy card payment
(order reserve, fraud check, authorize+capture, order confirm, store record) with no work inside,
so what is left is the engine's own cost.

This module runs inside the workflow sandbox: it imports nothing but temporalio and the standard
library, and calls activities by name.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

RESERVE = "bench.reserve"
FRAUD = "bench.fraud"
AUTHORIZE = "bench.authorize"
CONFIRM = "bench.confirm"
RECORD = "bench.record"

# In the happy path the five steps run in this order; the payment is decided once AUTHORIZE returns.
BEFORE_DECISION = (RESERVE, FRAUD)
AFTER_DECISION = (CONFIRM, RECORD)

# Generous so that a saturated 2-core machine shows up as latency, never as a timeout failure.
_STEP_TIMEOUT = timedelta(seconds=60)

DECIDED = "decided"
REQUIRES_ACTION = "requires_action"
PAID = "paid"


@workflow.defn(name="BenchPlainPayment")
class PlainPaymentWorkflow:
    """The reference a naive user writes: five regular activities, started normally, and the client
    waits for the result."""

    @workflow.run
    async def run(self, payment_id: str) -> str:
        for step in (*BEFORE_DECISION, AUTHORIZE, *AFTER_DECISION):
            await workflow.execute_activity(step, payment_id, start_to_close_timeout=_STEP_TIMEOUT)
        return PAID


@workflow.defn(name="BenchFastPayment")
class FastPaymentWorkflow:
    """The same steps written the way durapay's workflow is: the local, idempotent steps as local
    activities (no task round trip through the server), only the gateway call as a regular activity,
    and a `decide` update that answers as soon as the payment is decided, so the client can start it
    with update-with-start (or eagerly, and wait for the result)."""

    def __init__(self) -> None:
        self._outcome: str | None = None

    @workflow.run
    async def run(self, payment_id: str) -> str:
        for step in BEFORE_DECISION:
            await workflow.execute_local_activity(step, payment_id, start_to_close_timeout=_STEP_TIMEOUT)
        await workflow.execute_activity(AUTHORIZE, payment_id, start_to_close_timeout=_STEP_TIMEOUT)
        self._outcome = PAID
        for step in AFTER_DECISION:
            await workflow.execute_local_activity(step, payment_id, start_to_close_timeout=_STEP_TIMEOUT)
        return PAID

    @workflow.update
    async def decide(self) -> str:
        await workflow.wait_condition(lambda: self._outcome is not None)
        assert self._outcome is not None
        return self._outcome


@workflow.defn(name="BenchWaitingPayment")
class WaitingPaymentWorkflow:
    """A card payment that needs 3-D Secure, written the fast way: decided (requires action) after
    the authorize call, then it waits for the customer's return as a signal and finishes the steps.
    The engine reference for the scale and signal scenarios."""

    def __init__(self) -> None:
        self._outcome: str | None = None
        self._customer_back = False

    @workflow.run
    async def run(self, payment_id: str) -> str:
        for step in BEFORE_DECISION:
            await workflow.execute_local_activity(step, payment_id, start_to_close_timeout=_STEP_TIMEOUT)
        await workflow.execute_activity(AUTHORIZE, payment_id, start_to_close_timeout=_STEP_TIMEOUT)
        self._outcome = REQUIRES_ACTION
        await workflow.wait_condition(lambda: self._customer_back)
        # The customer is back: the provider is asked again (a lookup), then the order is confirmed.
        await workflow.execute_activity(AUTHORIZE, payment_id, start_to_close_timeout=_STEP_TIMEOUT)
        self._outcome = PAID
        for step in AFTER_DECISION:
            await workflow.execute_local_activity(step, payment_id, start_to_close_timeout=_STEP_TIMEOUT)
        return PAID

    @workflow.update
    async def decide(self) -> str:
        await workflow.wait_condition(lambda: self._outcome is not None)
        assert self._outcome is not None
        return self._outcome

    @workflow.signal
    def action_completed(self) -> None:
        self._customer_back = True
