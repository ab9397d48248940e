"""MerchantWebhooksWorkflow: delivers one payment's merchant events to the merchant's endpoint, in
order, at least once. Id `merchant-webhooks-<payment id>`.

The store's `record_transition` activity writes the events (the outbox) and then signals this
workflow with start (`events_recorded`), so the payment's own workflow issues no command for it and
never waits on the merchant's endpoint. This workflow reads the payment's pending events from the
store and sends them one at a time: an event is retried on an exponential backoff until the endpoint
answers 2xx within 10 s, or for three days, before the next is sent. Idle for an hour, it closes;
the next recorded event starts it again. See docs/ARCHITECTURE.md, "Merchant webhooks".
"""

from __future__ import annotations

import functools
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from workflows import activity_names as act
    from workflows.activity_options import ActivityOptions
    from workflows.domain import Contract

# Standard Webhooks' own schedule starts at seconds and stretches to hours; doubling from 10 s,
# capped at 6 h, gives 20 attempts in three days and an attempt within ~45 min of an endpoint
# coming back after an hour down.
FIRST_RETRY = timedelta(seconds=10)
MAX_RETRY_INTERVAL = timedelta(hours=6)
GIVE_UP_AFTER = timedelta(days=3)
IDLE_FOR = timedelta(hours=1)
MAX_HISTORY_EVENTS = 2000

# The store and the endpoint call: a worker that dies mid-call is noticed within the timeout and the
# attempt made again (the merchant may see a duplicate, with the same webhook-id). Errors are the
# worker's own (the database): retried until it answers; the endpoint's answer is a result.
_STEP = ActivityOptions(
    start_to_close_timeout=timedelta(seconds=15),
    retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1)),
)


class DeliveryResult(Contract):
    done: bool  # delivered (2xx), or not to be sent at all (no endpoint, type not enabled, gone)


class MerchantDelivery(Contract):
    payment_id: str


@workflow.defn
class MerchantWebhooksWorkflow:
    def __init__(self) -> None:
        self._recorded = 0  # `events_recorded` signals so far

    @workflow.run
    async def run(self, delivery: MerchantDelivery) -> None:
        while True:
            seen = self._recorded
            pending: list[str] = await workflow.execute_activity(
                act.PENDING_MERCHANT_EVENTS, delivery.payment_id, result_type=list[str], **_STEP
            )
            for event_id in pending:
                await self._deliver(event_id)
            if pending:
                continue  # more may have been recorded meanwhile
            info = workflow.info()
            if info.is_continue_as_new_suggested() or info.get_current_history_length() > MAX_HISTORY_EVENTS:
                workflow.continue_as_new(delivery)
            try:
                await workflow.wait_condition(
                    functools.partial(self._recorded_since, seen),
                    timeout=IDLE_FOR,
                    timeout_summary="idle",
                )
            except TimeoutError:
                return

    async def _deliver(self, event_id: str) -> None:
        first = workflow.now()
        delay = FIRST_RETRY
        while True:
            result: DeliveryResult = await workflow.execute_activity(
                act.DELIVER_MERCHANT_EVENT, event_id, result_type=DeliveryResult, **_STEP
            )
            if result.done:
                return
            if workflow.now() + delay - first > GIVE_UP_AFTER:
                await workflow.execute_activity(act.GIVE_UP_MERCHANT_EVENT, event_id, **_STEP)
                return
            await workflow.sleep(delay, summary=f"retry {event_id}")
            delay = min(delay * 2, MAX_RETRY_INTERVAL)

    def _recorded_since(self, seen: int) -> bool:
        return self._recorded > seen

    @workflow.signal
    def events_recorded(self) -> None:
        self._recorded += 1
