"""A payment's life after its main path, from inside PaymentWorkflow: the settlement phase that
applies late webhooks and asks about refunds whose outcome is unknown, and (patch
`long-lived-payments`) the runs that continue as new until the payment's end of life.

Workflow code (it waits and continues as new), held by the workflow like PaymentGateway; what a
webhook or a refund's lookup means is PaymentState's business.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.domain import PaymentInput, PaymentStatus, PaymentView
    from workflows.patches import LONG_LIVED_PAYMENTS
    from workflows.payment_effects import Effect
    from workflows.payment_gateway import PaymentGateway
    from workflows.payment_refund_state import SETTLED
    from workflows.payment_state import PaymentState

# Refunds take days, not minutes, and the settlement loop may ask about one for weeks: asking at
# most hourly keeps that history small (a few events per ask) without delaying the answer much.
MAX_REFUND_POLL_INTERVAL = timedelta(hours=1)


class PaymentLifetime:
    def __init__(
        self,
        input: PaymentInput,
        state: PaymentState,
        gateway: PaymentGateway,
        *,
        run: Callable[[list[Effect]], Awaitable[None]],
        apply_pending_events: Callable[[], Awaitable[None]],
    ) -> None:
        """`run(effects)` carries out what the state decided; `apply_pending_events()` applies the
        webhooks the state has queued (both the workflow's)."""
        self._input = input
        self._state = state
        self._gateway = gateway
        self._run = run
        self._apply_pending_events = apply_pending_events

    @property
    def _view(self) -> PaymentView:
        return self._state.view

    async def close(self, *, settle: bool = True) -> PaymentView:
        """Stay open through the settlement window to serialize refunds, disputes and late
        webhooks, then finish once every handler is done and no refund is left unresolved. A
        payment that never reached the gateway (`settle=False`) has nothing to settle and closes
        at once."""
        if settle and workflow.patched(LONG_LIVED_PAYMENTS.id):
            return await self.live(self.end_of_life())
        window = timedelta(seconds=self._input.settings.settlement_window_seconds if settle else 0)
        deadline = workflow.now() + window
        while True:
            await self._settle(deadline)
            # A refund update still at the gateway may leave its refund unresolved: settle again.
            await workflow.wait_condition(workflow.all_handlers_finished)
            # Money held for review is settled by an operator, however long that takes.
            await workflow.wait_condition(lambda: self._view.status is not PaymentStatus.REQUIRES_REVIEW)
            if not self._state.unresolved_refunds():
                return self._view

    def end_of_life(self) -> datetime:
        """When the payment stops taking refunds, disputes and late events in a running workflow:
        its gateway's window after creation (or the configured one) once money moved; a payment
        that failed or was cancelled only waits one settlement period for a late success."""
        settings = self._input.settings
        window = settings.payment_window_seconds
        if window is None:
            window = self._input.gateway.payment_window_seconds
        if self._view.status not in SETTLED:
            window = min(window, settings.settlement_window_seconds)
        return self._view.created_at + timedelta(seconds=window)

    async def live(self, end: datetime) -> PaymentView:
        """The settlement phase of a long-lived payment (patch `long-lived-payments`): runs of at
        most one settlement period, or `max_history_events` events, each continuing as new with
        the payment's state, until `end`. A refund or an event after `end` starts a fresh run
        from the stored projection (activities/reopen.py)."""
        period = timedelta(seconds=self._input.settings.settlement_window_seconds)
        period_end = min(end, workflow.now() + period) if period else end
        while True:
            await self._settle(period_end, bounded=True)
            await workflow.wait_condition(workflow.all_handlers_finished)
            # Money held for review is settled by an operator, however long that takes (no timer,
            # and no continuing as new: the review needs this run's receipt).
            await workflow.wait_condition(lambda: self._view.status is not PaymentStatus.REQUIRES_REVIEW)
            if self._state.unresolved_refunds() or self._state.inbox:
                continue  # a refund handler or a signal came in meanwhile: settle it first
            if workflow.now() >= end:
                return self._view
            workflow.continue_as_new(self._input.model_copy(update={"resume": self._state.resume_point()}))

    def _history_is_long(self) -> bool:
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested()
            or info.get_current_history_length() >= self._input.settings.max_history_events
        )

    async def _settle(self, deadline: datetime, *, bounded: bool = False) -> None:
        """Apply webhooks until `deadline`, and ask the gateway about refunds whose outcome is
        unknown on a backoff, past the deadline if need be: closing with a refund pending would
        leave it pending on the record for ever. `bounded`: also return, with nothing unresolved,
        once the history is long enough to continue as new."""
        state = self._state
        first_poll = timedelta(seconds=self._input.settings.status_poll_seconds)
        poll = first_poll
        while True:
            unresolved = bool(state.unresolved_refunds())
            remaining = deadline - workflow.now()
            if (remaining <= timedelta(0) or (bounded and self._history_is_long())) and not unresolved:
                return
            if unresolved:
                timeout = min(remaining, poll) if remaining > timedelta(0) else poll
            else:
                poll = first_poll
                timeout = remaining
            try:
                await workflow.wait_condition(
                    # Also wake when a refund handler leaves a refund unresolved: it needs polling.
                    lambda: bool(state.inbox) or (not unresolved and bool(state.unresolved_refunds())),  # noqa: B023 (awaited in this iteration)
                    timeout=timeout,
                    timeout_summary="settlement window",
                )
            except TimeoutError:
                if unresolved:
                    await self._poll_pending_refunds()
                    poll = min(poll * 2, MAX_REFUND_POLL_INTERVAL)
                continue
            await self._apply_pending_events()

    async def _poll_pending_refunds(self) -> None:
        for refund in self._state.unresolved_refunds():
            result = await self._gateway.lookup_refund(refund)
            if result is not None:
                await self._run(self._state.refund_looked_up(refund, result))
