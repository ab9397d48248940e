"""PaymentWorkflow: one durable workflow per payment, id `payment-<payment id>`.

order check -> fraud check -> authorize -> (customer action) -> capture -> order confirmation, then
the workflow stays open through the settlement window so that refunds, disputes and late webhooks
are applied one at a time, in order, to one authoritative state.

This class owns the waits, the activity calls and the messages, with helpers it holds for the
gateway calls (workflows/payment_gateway.py), routing, fraud screening and review
(workflows/payment_screening.py) and the settlement phase (workflows/payment_lifetime.py); what a
gateway answer, a webhook or a refund outcome means for the payment is decided by `PaymentState`
(workflows/payment_state.py), whose effects `_run` carries out.

Rules the code keeps:
- A payment is never marked failed without proof that no money moved: a gateway call whose outcome
  is unknown puts the payment in OUTCOME_UNKNOWN and the workflow asks the gateway until it knows.
- Every gateway call carries an idempotency key derived from the workflow id and the operation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows import activity_names as act
    from workflows import search_attributes as sa
    from workflows.activity_options import LOCAL_STEP
    from workflows.customer_wait import MAX_POLL_INTERVAL, CustomerWait
    from workflows.domain import (
        CaptureMethod,
        Failure,
        FraudResult,
        PaymentInput,
        PaymentStatus,
        PaymentView,
        RefundView,
        RoutingRequest,
    )
    from workflows.gateway_io import GatewayEvent, GatewayPaymentStatus, GatewayResult
    from workflows.ledger_io import (
        OrderRelease,
        OrderReservation,
        PaymentEventRecord,
        PaymentTransition,
        ReservationResult,
    )
    from workflows.messages import (
        ActionCompleted,
        BankTransferReceipt,
        BankTransferResolution,
        CancelRequest,
        CaptureRequest,
        DecisionRequest,
        RefundRequest,
        ReviewDecision,
    )
    from workflows.patches import (
        FEWER_LOCAL_STEPS,
        FRAUD_SCREENING,
        GATEWAY_ROUTING,
        INDEX_PROVIDER_PAYMENT_ID,
        NOTIFIED_WAIT_ONE_LOOKUP,
        VERIFIED_GATEWAY_EVENTS,
    )
    from workflows.payment_effects import (
        ConfirmPaid,
        Effect,
        Finish,
        Record,
        RefundLatePayment,
        Refusal,
        SendFraudFeedback,
    )
    from workflows.payment_event_proof import EventProofChecks
    from workflows.payment_gateway import PaymentGateway
    from workflows.payment_lifetime import PaymentLifetime
    from workflows.payment_screening import PaymentScreening
    from workflows.payment_state import (
        NOT_CAPTURED_YET,
        PAID_EVENTS,
        PaymentState,
        failure_for,
    )
    from workflows.rejections import Rejection
    from workflows.validation import validate_payment

# A run started on demand for a closed payment (a refund, a late provider event) stays this long for
# the message it was started for and any that follow, then closes again.
REOPENED_FOR = timedelta(minutes=10)


@workflow.defn
class PaymentWorkflow(EventProofChecks):
    @workflow.init
    def __init__(self, input: PaymentInput) -> None:
        self._input = input
        self._state = PaymentState(input, clock=workflow.now, patched=workflow.patched)
        if input.resume is not None:
            self._state.restore(input.resume)
        self._action: ActionCompleted | None = None
        self._capture_request: CaptureRequest | None = None
        self._cancel_request: CancelRequest | None = None
        self._review_request: ReviewDecision | None = None
        self._hold_helpers()
        # Records for the store that ride along with the next transition (see `_apply_event`).
        self._carried: list[PaymentEventRecord] = []

    def _hold_helpers(self) -> None:
        """The helpers that act for the payment, for `self._input`: at the start, and again once
        routing chose the gateway (before any of them did anything)."""
        self._gateway = PaymentGateway(self._input, self._state, outcome_unknown=self._outcome_unknown)
        self._screening = PaymentScreening(self._input, self._state, run=self._run)
        self._lifetime = PaymentLifetime(
            self._input,
            self._state,
            self._gateway,
            run=self._run,
            apply_pending_events=self._apply_pending_events,
        )

    @property
    def _view(self) -> PaymentView:
        return self._state.view

    # ---------------------------------------------------------------- main path

    @workflow.run
    async def run(self, input: PaymentInput) -> PaymentView:
        if input.resume is not None:
            # A later run of a payment past its main path: straight to the settlement phase.
            if input.resume.reopened:
                await self._transition(None, "payment.reopened")
                return await self._lifetime.live(workflow.now() + REOPENED_FOR)
            return await self._lifetime.live(self._lifetime.end_of_life())
        if input.routing is not None and workflow.patched(GATEWAY_ROUTING.id):
            await self._route(input.routing)
        failure = validate_payment(self._input.gateway, input.amount, input.method, input.capture_method)
        if failure:
            await self._fail(failure, release_order=False)
            return await self._close(settle=False)

        reservation: ReservationResult = await workflow.execute_local_activity(
            act.RESERVE_ORDER,
            OrderReservation(
                order_id=input.order_id,
                payment_id=input.payment_id,
                amount=input.amount,
                merchant_id=input.merchant_id,
            ),
            result_type=ReservationResult,
            **LOCAL_STEP,
        )
        if not reservation.accepted:
            code = f"order_{reservation.refusal.value}" if reservation.refusal else "order_refused"
            await self._fail(
                Failure(code=code, message=reservation.message or "the order refuses this payment"),
                release_order=False,
            )
            return await self._close(settle=False)

        if workflow.patched(FEWER_LOCAL_STEPS.id):
            # The store must know the payment before the gateway call (reconciliation starts
            # there), not before the fraud rules, which leave the payment being checked out of
            # their counts: record it while they run. A blocked payment's record then shows it
            # created, then failed.
            if input.settings.enable_fraud_check:
                fraud, _ = await asyncio.gather(
                    self._screening.check_fraud(), self._transition(None, "payment.created")
                )
                if await self._blocked_by(await self._screening.screen(fraud)):
                    return await self._close(settle=False)
            else:
                await self._transition(None, "payment.created")
        else:
            if input.settings.enable_fraud_check and await self._blocked_by(
                await self._screening.check_fraud()
            ):
                return await self._close(settle=False)
            await self._transition(None, "payment.created")
        held = self._state.needs_review() and workflow.patched(FRAUD_SCREENING.id)
        if held and not self._state.review_after_authorization():
            # Nothing is created at the provider (no QR code, no redirect) before an approval.
            if not await self._review():
                await self._run([self._state.review_rejection()])
                return await self._close(settle=False)
        self._state.authorize_for_review = held and self._state.review_after_authorization()
        result = await self._gateway.authorize()
        await self._follow(result)
        if self._state.authorize_for_review and self._view.status is PaymentStatus.REQUIRES_REVIEW:
            # Held by the fraud check: the card is authorized, not captured; approve captures,
            # reject voids. (Money held for review otherwise, a bank transfer's, waits in _close.)
            if not await self._review():
                finish = self._state.review_rejection()
                await self._void("fraudulent", finish.failure)
                return await self._close()
        if self._view.status is PaymentStatus.AUTHORIZED:
            await self._capture_phase()
        return await self._close()

    async def _review(self) -> bool:
        return await self._screening.review(lambda: self._review_request, lambda: self._cancel_request)

    async def _route(self, request: RoutingRequest) -> None:
        """Choose the gateway before anything moves money, once: a declined payment is never
        retried elsewhere (tokens are per provider; card networks limit re-attempts)."""
        default = self._input.gateway
        decision = await self._screening.route(request)
        self._input = self._state.route(decision)
        self._hold_helpers()
        if decision.gateway.id != default.id:
            workflow.upsert_search_attributes([sa.GATEWAY.value_set(decision.gateway.id)])
        # On the record with the payment's first transition.
        self._carried.append(
            PaymentEventRecord(
                type="payment.routed", data={"gateway": decision.gateway.id, "reason": decision.reason}
            )
        )

    async def _blocked_by(self, fraud: FraudResult) -> bool:
        failure = self._state.fraud_failure(fraud)
        if failure is None:
            return False
        await self._fail(failure, release_order=True)
        return True

    async def _follow(self, result: GatewayResult) -> None:
        """Apply a gateway result, then keep going until the payment is authorized, paid or over."""
        await self._apply_result(result)
        await self._apply_pending_events()
        if self._view.status is PaymentStatus.AUTHORIZING:
            await self._await_customer()

    async def _await_customer(self) -> None:
        """Wait for the customer (3-D Secure, redirect, QR) or the provider. A completion signal and
        the timers (workflows/customer_wait.py) are only reasons to ask the gateway; a verified
        webhook is applied directly."""
        notified = self._state.action_notified() and workflow.patched(NOTIFIED_WAIT_ONE_LOOKUP.id)
        first_poll = timedelta(seconds=self._input.settings.status_poll_seconds)
        wait = CustomerWait(workflow.now(), self._state.action_timeout(), first_poll, notified=notified)
        while self._view.status is PaymentStatus.AUTHORIZING:
            if workflow.now() >= wait.deadline:
                # The customer did not finish in time: close at the gateway (if the provider
                # says the payment went through meanwhile, that wins).
                await self._void(
                    "abandoned",
                    Failure(
                        code="action_timeout", message="the customer did not complete the payment in time"
                    ),
                )
                return
            try:
                await workflow.wait_condition(
                    lambda: (
                        bool(self._state.inbox)
                        or self._action is not None
                        or self._cancel_request is not None
                        # moved by an update (a bank transfer confirmed)
                        or self._view.status is not PaymentStatus.AUTHORIZING
                    ),
                    timeout=wait.timer(workflow.now()),
                    timeout_summary="waiting for the customer",
                )
            except TimeoutError:
                if workflow.now() >= wait.deadline:
                    continue  # the loop's head gives up
                wait.asked()
                await self._apply_result(await self._gateway.lookup())
                continue
            await self._apply_pending_events()
            if self._action is not None and self._view.status is PaymentStatus.AUTHORIZING:
                action, self._action = self._action, None
                await self._apply_result(await self._gateway.lookup(action.data))
            if self._cancel_request is not None and self._view.status is PaymentStatus.AUTHORIZING:
                await self._void(
                    self._cancel_request.reason,
                    Failure(code="cancelled", message="cancelled before completion"),
                )

    async def _capture_phase(self) -> None:
        settings = self._input.settings
        # The hold does not last for ever: waiting for a capture and retrying one both end here.
        expires_at = workflow.now() + timedelta(seconds=settings.authorization_ttl_seconds)
        if self._input.capture_method is CaptureMethod.MANUAL:
            expired = not await self._wait_while_authorized(
                lambda: self._capture_request is not None,
                expires_at - workflow.now(),
                "waiting for a capture",
            )
            if expired:
                await self._void(
                    "abandoned",
                    Failure(code="authorization_expired", message="the authorization was never captured"),
                )
                return
        elif settings.capture_delay_seconds:
            await self._wait_while_authorized(
                lambda: False, timedelta(seconds=settings.capture_delay_seconds), "capture delay"
            )
        amount_minor = self._state.capture_amount_minor(self._capture_request)
        retry_wait = timedelta(seconds=settings.status_poll_seconds)
        result: GatewayResult | None = None
        while True:
            if self._view.status is not PaymentStatus.AUTHORIZED:
                return  # cancelled, or a webhook settled it meanwhile
            if self._cancel_request is not None:
                await self._void(
                    self._cancel_request.reason, Failure(code="cancelled", message="cancelled before capture")
                )
                return
            if result is not None:
                # Ask before capturing again: an earlier attempt may have landed since.
                result = await self._gateway.lookup()
            if result is None or result.status is GatewayPaymentStatus.AUTHORIZED:
                result = await self._gateway.capture(amount_minor)
            if result.status not in NOT_CAPTURED_YET:
                break
            # The capture's outcome was unknown and the provider says the money is still only held
            # (or the capture is still in progress there). Leaving it like this would strand the
            # payment as authorized for good: wait, then ask and capture again under a new key
            # (a provider may keep answering the failed attempt under the old one; a payment
            # cannot be captured twice), until the hold expires.
            if self._view.status is not PaymentStatus.AUTHORIZED:
                await self._transition(PaymentStatus.AUTHORIZED, "payment.capture_pending")
            remaining = expires_at - workflow.now()
            if remaining <= timedelta(0):
                await self._void(
                    "abandoned",
                    Failure(
                        code="authorization_expired",
                        message="the capture did not go through before the authorization expired",
                    ),
                )
                return
            await self._wait_while_authorized(lambda: False, min(retry_wait, remaining), "capture retry")
            retry_wait = min(retry_wait * 2, MAX_POLL_INTERVAL)
        if result.status is GatewayPaymentStatus.DECLINED:
            # The capture was refused: unless the gateway says it was captured after all, release
            # the hold rather than leave the customer's funds blocked.
            looked = await self._gateway.lookup()
            if looked.status is GatewayPaymentStatus.SUCCEEDED:
                await self._apply_result(looked)
            else:
                await self._void("abandoned", result.failure or failure_for(result.status))
            return
        await self._apply_result(result)

    async def _wait_while_authorized(
        self, done: Callable[[], bool], timeout: timedelta, summary: str
    ) -> bool:
        """Wait up to `timeout` for `done()`, applying webhooks and honouring a cancel meanwhile.
        Returns False when the time ran out."""
        deadline = workflow.now() + timeout
        while self._view.status is PaymentStatus.AUTHORIZED:
            remaining = deadline - workflow.now()
            if remaining <= timedelta(0):
                return False
            try:
                await workflow.wait_condition(
                    lambda: done() or bool(self._state.inbox) or self._cancel_request is not None,
                    timeout=remaining,
                    timeout_summary=summary,
                )
            except TimeoutError:
                return False
            await self._apply_pending_events()
            if self._cancel_request is not None or done():
                return True
        return True

    async def _void(self, reason: str, failure: Failure) -> None:
        # Read before the call: an unknown outcome moves the status to OUTCOME_UNKNOWN meanwhile.
        was_authorized = self._view.status is PaymentStatus.AUTHORIZED
        result = await self._gateway.cancel(reason)
        if result.status is GatewayPaymentStatus.DECLINED:
            # The gateway refused the void: what it says the payment is decides.
            result = await self._gateway.lookup()
        await self._run(self._state.apply_void_result(result, was_authorized, failure))

    # ---------------------------------------------------------------- settlement

    async def _close(self, *, settle: bool = True) -> PaymentView:
        return await self._lifetime.close(settle=settle)

    async def _refund(self, request: RefundRequest) -> RefundView:
        # Booked before the first await: the validator of an update delivered in the same task
        # runs right after this handler yields and must see what this one reserved.
        refund, new = self._state.book_refund(request)
        if not new:
            return refund
        result = await self._gateway.refund(refund)
        await self._run(self._state.refund_returned(refund.refund_id, result))
        return refund

    # ---------------------------------------------------------------- effects of the state machine

    async def _outcome_unknown(self, operation: str) -> None:
        await self._transition(PaymentStatus.OUTCOME_UNKNOWN, f"payment.{operation}_outcome_unknown")

    async def _apply_result(self, result: GatewayResult) -> None:
        await self._run(self._state.apply_result(result))

    async def _fail(self, failure: Failure, *, release_order: bool) -> None:
        await self._run([Finish(PaymentStatus.FAILED, failure, "payment.failed", release_order)])

    async def _run(self, effects: list[Effect]) -> None:
        """Carry out what the state machine decided, in order."""
        for effect in effects:
            if isinstance(effect, Record):
                if effect.alone and self._carried:
                    await self._transition(None)
                await self._transition(effect.status, *effect.events, data=effect.data)
            elif isinstance(effect, Finish):
                if effect.release_order:
                    await workflow.execute_local_activity(
                        act.RELEASE_ORDER,
                        OrderRelease(
                            order_id=self._input.order_id,
                            payment_id=self._input.payment_id,
                            merchant_id=self._input.merchant_id,
                        ),
                        **LOCAL_STEP,
                    )
                self._state.finish(effect.failure)
                await self._transition(effect.status, effect.event, data={"code": effect.failure.code})
            elif isinstance(effect, ConfirmPaid):
                await self._confirm_paid()
            elif isinstance(effect, RefundLatePayment):
                await self._refund(effect.request)
            elif isinstance(effect, SendFraudFeedback):
                self._screening.send_feedback(effect.call)

    async def _confirm_paid(self) -> None:
        confirm = workflow.execute_local_activity(
            act.CONFIRM_ORDER,
            OrderRelease(
                order_id=self._input.order_id,
                payment_id=self._input.payment_id,
                merchant_id=self._input.merchant_id,
            ),
            **LOCAL_STEP,
        )
        if workflow.patched(FEWER_LOCAL_STEPS.id):
            # Both are retried until they are done and neither reads what the other writes: the
            # money moved, the ledger follows it either way (`confirm` logs a conflict, it never
            # refuses), so the store need not wait for it.
            self._state.complete()
            await asyncio.gather(confirm, self._transition(PaymentStatus.PAID, *PAID_EVENTS))
        else:
            await confirm
            self._state.complete()
            await self._transition(PaymentStatus.PAID, *PAID_EVENTS)
        self._state.paid()

    async def _apply_pending_events(self) -> None:
        while self._state.inbox:
            await self._apply_event(self._state.inbox.pop(0))

    async def _apply_event(self, event: GatewayEvent) -> None:
        received = PaymentEventRecord(
            type="webhook.received", data={"event_id": event.event_id, "type": event.provider_type}
        )
        if workflow.patched(VERIFIED_GATEWAY_EVENTS.id) and not await self._event_proven(event, received):
            return
        if workflow.patched(FEWER_LOCAL_STEPS.id):
            # Recorded with whatever the event causes, in the same store write; on its own only
            # when it causes nothing.
            self._carried.append(received)
            await self._run(self._state.apply_event(event))
            if self._carried:
                await self._transition(None)
        else:
            await self._transition(None, received.type, data=received.data)
            await self._run(self._state.apply_event(event))

    async def _transition(
        self, status: PaymentStatus | None, *events: str, data: dict[str, str] | None = None
    ) -> None:
        """Bump the version, tell the UI and the store. `status=None` records without moving."""
        if self._state.advance(status):
            workflow.upsert_search_attributes([sa.PAYMENT_STATUS.value_set(self._view.status.value)])
        provider_id = self._view.provider_payment_id
        if (
            provider_id
            and workflow.info().typed_search_attributes.get(sa.PROVIDER_PAYMENT_ID) != provider_id
            and workflow.patched(INDEX_PROVIDER_PAYMENT_ID.id)
        ):
            workflow.upsert_search_attributes([sa.PROVIDER_PAYMENT_ID.value_set(provider_id)])
        workflow.set_current_details(self._state.details())
        records, self._carried = (
            [*self._carried, *(PaymentEventRecord(type=e, data=data or {}) for e in events)],
            [],
        )
        await workflow.execute_local_activity(
            act.RECORD_TRANSITION,
            PaymentTransition(view=self._view, events=records),
            **LOCAL_STEP,
        )

    # ---------------------------------------------------------------- messages

    @workflow.query
    def view(self) -> PaymentView:
        return self._view

    @workflow.update
    async def decide(self, request: DecisionRequest) -> PaymentView:
        await workflow.wait_condition(lambda: self._view.decided)
        return self._view

    @decide.validator
    def _validate_decide(self, request: DecisionRequest) -> None:
        _reject(self._state.decide_refusal(request))

    @workflow.update
    async def capture(self, request: CaptureRequest) -> PaymentView:
        self._capture_request = request
        await workflow.wait_condition(self._state.capture_answered)
        return self._view

    @capture.validator
    def _validate_capture(self, request: CaptureRequest) -> None:
        _reject(self._state.capture_refusal(request, capture_requested=self._capture_request is not None))

    @workflow.update
    async def cancel(self, request: CancelRequest) -> PaymentView:
        self._cancel_request = request
        await workflow.wait_condition(self._state.cancel_answered)
        return self._view

    @cancel.validator
    def _validate_cancel(self, request: CancelRequest) -> None:
        _reject(self._state.cancel_refusal(request))

    @workflow.update
    async def refund(self, request: RefundRequest) -> RefundView:
        return await self._refund(request)

    @refund.validator
    def _validate_refund(self, request: RefundRequest) -> None:
        _reject(self._state.refund_refusal(request))

    @workflow.update
    async def review(self, request: ReviewDecision) -> PaymentView:
        """An operator's decision on a payment held for review (API or Temporal UI). Answers once the
        payment has moved on: captured, cancelled, or waiting for the merchant's capture."""
        self._review_request = request
        await workflow.wait_condition(self._state.review_answered)
        return self._view

    @review.validator
    def _validate_review(self, request: ReviewDecision) -> None:
        if self._review_request is not None:  # another decision arrived first, not yet applied
            raise ApplicationError(
                "the payment's review is being decided", type=Rejection.INVALID_STATE, non_retryable=True
            )
        _reject(self._state.review_refusal(request))

    @workflow.update
    async def confirm_bank_transfer(self, receipt: BankTransferReceipt) -> PaymentView:
        """Money arrived by bank transfer: the proof a bank transfer payment waits for (a signal
        cannot give it: only this validated update, whose receipt says who vouches for it)."""
        await self._run(self._state.bank_transfer_received(receipt))
        return self._view

    @confirm_bank_transfer.validator
    def _validate_confirm_bank_transfer(self, receipt: BankTransferReceipt) -> None:
        _reject(self._state.receipt_refusal(receipt))

    @workflow.update
    async def resolve_bank_transfer(self, resolution: BankTransferResolution) -> PaymentView:
        await self._run(self._state.resolve_bank_transfer(resolution))
        return self._view

    @resolve_bank_transfer.validator
    def _validate_resolve_bank_transfer(self, resolution: BankTransferResolution) -> None:
        _reject(self._state.bank_transfer_review_refusal(resolution))

    @workflow.signal
    def action_completed(self, completion: ActionCompleted) -> None:
        self._action = completion

    @workflow.signal
    def gateway_event(self, event: GatewayEvent) -> None:
        self._state.receive(event)


def _reject(refusal: Refusal | None) -> None:
    if refusal is not None:
        raise ApplicationError(refusal.message, type=refusal.rejection, non_retryable=True)
