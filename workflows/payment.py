"""PaymentWorkflow: one durable workflow per payment, id `payment-<payment id>`.

order check -> fraud check -> authorize -> (customer action) -> capture -> order confirmation, then
the workflow stays open through the settlement window so that refunds, disputes and late webhooks
are applied one at a time, in order, to one authoritative state.

Rules the code keeps:
- A payment is never marked failed without proof that no money moved: a gateway call whose outcome
  is unknown puts the payment in OUTCOME_UNKNOWN and the workflow asks the gateway until it knows.
- Webhook events are applied at most once (by provider event id) and never move a payment backwards.
- Every gateway call carries an idempotency key derived from the workflow id and the operation.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows import activity_names as act
    from workflows import search_attributes as sa
    from workflows.domain import (
        FINAL_FAILURE_STATUSES,
        CaptureMethod,
        CardMethod,
        DisputeView,
        Failure,
        FraudDecision,
        FraudResult,
        PaymentInput,
        PaymentStatus,
        PaymentView,
        RefundStatus,
        RefundView,
    )
    from workflows.gateway_io import (
        AuthorizeCall,
        CancelCall,
        CaptureCall,
        GatewayEvent,
        GatewayEventKind,
        GatewayPaymentStatus,
        GatewayResult,
        LookupCall,
        RefundCall,
        RefundLookupCall,
        RefundResult,
    )
    from workflows.ledger_io import (
        FraudCheckRequest,
        OrderRelease,
        OrderReservation,
        PaymentEventRecord,
        PaymentTransition,
        ReservationResult,
    )
    from workflows.messages import (
        ActionCompleted,
        CancelRequest,
        CaptureRequest,
        DecisionRequest,
        RefundRequest,
    )
    from workflows.rejections import Rejection
    from workflows.validation import validate_payment

# Local steps (store, order ledger, fraud rules) are short and idempotent: run them as local
# activities, retried until the database answers, without extra history events per attempt.
LOCAL_STEP = dict(
    start_to_close_timeout=timedelta(seconds=10),
    retry_policy=RetryPolicy(
        initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=10)
    ),
)

# A gateway call: retried with the same idempotency key while the provider is unreachable, rate
# limits or answers 5xx. When retries run out the outcome is *unknown*, not failed, and a lookup
# decides; two minutes bounds how long a provider that replays a saved 500 for our key can hold a
# payment before we ask it instead. The activity heartbeats, so a worker that dies mid-call is
# noticed in seconds.
GATEWAY_CALL = dict(
    start_to_close_timeout=timedelta(seconds=30),
    schedule_to_close_timeout=timedelta(minutes=2),
    heartbeat_timeout=timedelta(seconds=10),
    retry_policy=RetryPolicy(
        initial_interval=timedelta(milliseconds=500),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=10),
    ),
)

# Asking the gateway what happened never gives up: it is how an unknown outcome gets resolved.
GATEWAY_LOOKUP = dict(
    start_to_close_timeout=timedelta(seconds=30),
    heartbeat_timeout=timedelta(seconds=10),
    retry_policy=RetryPolicy(
        initial_interval=timedelta(seconds=1),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(minutes=2),
    ),
)

# Patch (docs/WORKFLOW_CHANGES.md): independent local steps run side by side, and a webhook's
# `webhook.received` record travels with the transition the webhook causes, instead of one local
# activity (and one database transaction) after another.
FEWER_LOCAL_STEPS = "fewer-local-steps"
# The provider's payment id becomes the ProviderPaymentId search attribute once it is known.
INDEX_PROVIDER_ID = "index-provider-payment-id"

MAX_POLL_INTERVAL = timedelta(minutes=10)
# Refunds take days, not minutes, and the settlement loop may ask about one for weeks: asking at
# most hourly keeps that history small (a few events per ask) without delaying the answer much.
MAX_REFUND_POLL_INTERVAL = timedelta(hours=1)

# Statuses in which the payment is waiting on the customer or the provider.
_OPEN = (PaymentStatus.PENDING, PaymentStatus.AUTHORIZING, PaymentStatus.OUTCOME_UNKNOWN)
_SETTLED = (
    PaymentStatus.PAID,
    PaymentStatus.PARTIALLY_REFUNDED,
    PaymentStatus.REFUNDED,
    PaymentStatus.DISPUTED,
)
_CANCELLABLE = (PaymentStatus.PENDING, PaymentStatus.AUTHORIZING, PaymentStatus.AUTHORIZED)
_DISPUTE_CLOSED_IN_OUR_FAVOUR = ("won", "warning_closed")
# What a capture (or the lookup after one with an unknown outcome) may answer while the money is
# still only held: the capture has not happened, or not yet.
_NOT_CAPTURED_YET = (
    GatewayPaymentStatus.AUTHORIZED,
    GatewayPaymentStatus.PROCESSING,
    GatewayPaymentStatus.REQUIRES_ACTION,
)


@workflow.defn
class PaymentWorkflow:
    @workflow.init
    def __init__(self, input: PaymentInput) -> None:
        self._input = input
        now = workflow.now()
        self._view = PaymentView(
            id=input.payment_id,
            merchant_id=input.merchant_id,
            order_id=input.order_id,
            gateway=input.gateway.id,
            status=PaymentStatus.PENDING,
            amount=input.amount,
            capture_method=input.capture_method,
            method=input.method,
            customer_id=input.customer_id,
            customer_ip=input.customer_ip,
            metadata=input.metadata,
            created_at=now,
            updated_at=now,
        )
        self._authorized_minor = 0
        self._seen_event_ids: set[str] = set()
        self._events: list[GatewayEvent] = []  # verified, not yet applied
        # Refund notifications that overtook the payment's own confirmation: applied once it settles.
        self._early_refund_events: list[GatewayEvent] = []
        self._action: ActionCompleted | None = None
        self._capture_request: CaptureRequest | None = None
        self._cancel_request: CancelRequest | None = None
        # Refund handlers and the main loop both call the gateway: one call at a time.
        self._gateway_lock = asyncio.Lock()
        self._attempts: dict[str, int] = {}  # per operation, for `_next_key`
        self._refunds_in_flight: set[str] = set()  # refund ids whose gateway call has not returned
        # Records for the store that ride along with the next transition (see `_apply_event`).
        self._carried: list[PaymentEventRecord] = []

    # ---------------------------------------------------------------- main path

    @workflow.run
    async def run(self, input: PaymentInput) -> PaymentView:
        failure = validate_payment(input.gateway, input.amount, input.method, input.capture_method)
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

        if workflow.patched(FEWER_LOCAL_STEPS):
            # The store must know the payment before the gateway call (reconciliation starts
            # there), not before the fraud rules, which leave the payment being checked out of
            # their counts: record it while they run. A blocked payment's record then shows it
            # created, then failed.
            if input.settings.enable_fraud_check:
                fraud, _ = await asyncio.gather(
                    self._check_fraud(), self._transition(None, "payment.created")
                )
                if await self._blocked_by(fraud):
                    return await self._close(settle=False)
            else:
                await self._transition(None, "payment.created")
        else:
            if input.settings.enable_fraud_check and await self._blocked_by(await self._check_fraud()):
                return await self._close(settle=False)
            await self._transition(None, "payment.created")
        result = await self._authorize()
        await self._follow(result)
        if self._view.status is PaymentStatus.AUTHORIZED:
            await self._capture_phase()
        return await self._close()

    async def _check_fraud(self) -> FraudResult:
        method = self._input.method
        card = method if isinstance(method, CardMethod) else None
        return await workflow.execute_local_activity(
            act.CHECK_FRAUD,
            FraudCheckRequest(
                payment_id=self._input.payment_id,
                amount=self._input.amount,
                customer_id=self._input.customer_id,
                customer_ip=self._input.customer_ip,
                customer_email=self._input.customer_email,
                card_fingerprint=card.fingerprint if card else None,
                card_country=card.country if card else None,
                ip_country=self._input.metadata.get("ip_country"),
            ),
            result_type=FraudResult,
            **LOCAL_STEP,
        )

    async def _blocked_by(self, fraud: FraudResult) -> bool:
        self._view.fraud = fraud
        if fraud.score <= self._input.settings.risk_threshold and fraud.decision is not FraudDecision.BLOCK:
            return False
        await self._fail(
            Failure(
                code="blocked_by_fraud_check",
                message=f"risk score {fraud.score} is above the threshold: " + ", ".join(fraud.reasons),
            ),
            release_order=True,
        )
        return True

    async def _authorize(self) -> GatewayResult:
        inp = self._input
        # A gateway that cannot hold funds (wallets) captures on payment, whatever the delay.
        capture_now = inp.capture_method is CaptureMethod.AUTOMATIC and (
            inp.settings.capture_delay_seconds == 0 or not inp.gateway.supports_manual_capture
        )
        threshold = inp.settings.tds_threshold_minor
        call = AuthorizeCall(
            gateway=inp.gateway.id,
            payment_id=inp.payment_id,
            order_id=inp.order_id,
            amount=inp.amount,
            method=inp.method,
            capture=capture_now,
            request_three_ds=threshold is not None and inp.amount.minor >= threshold,
            customer_id=inp.provider_customer_id or inp.customer_id,
            customer_email=inp.customer_email,
            customer_ip=inp.customer_ip,
            return_url=inp.return_url,
            description=inp.description,
            metadata=inp.metadata,
            idempotency_key=self._key("authorize"),
            expires_at=workflow.now() + timedelta(seconds=inp.settings.action_timeout_seconds),
        )
        return await self._gateway_call(act.AUTHORIZE, call, "authorize")

    async def _follow(self, result: GatewayResult) -> None:
        """Apply a gateway result, then keep going until the payment is authorized, paid or over."""
        await self._apply_result(result)
        await self._apply_pending_events()
        if self._view.status is PaymentStatus.AUTHORIZING:
            await self._await_customer()

    async def _await_customer(self) -> None:
        """Wait for the customer (3-D Secure, redirect, QR) or the provider. A completion signal and
        the poll are only reasons to ask the gateway; a verified webhook is applied directly."""
        timeout = timedelta(seconds=self._input.settings.action_timeout_seconds)
        deadline = workflow.now() + timeout
        poll = timedelta(seconds=self._input.settings.status_poll_seconds)
        while self._view.status is PaymentStatus.AUTHORIZING:
            remaining = deadline - workflow.now()
            if remaining <= timedelta(0):
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
                        bool(self._events) or self._action is not None or self._cancel_request is not None
                    ),
                    timeout=min(poll, remaining),
                    timeout_summary="waiting for the customer",
                )
            except TimeoutError:
                if workflow.now() >= deadline:
                    continue  # the loop's head gives up
                poll = min(poll * 2, MAX_POLL_INTERVAL)
                await self._apply_result(await self._lookup())
                continue
            await self._apply_pending_events()
            if self._action is not None and self._view.status is PaymentStatus.AUTHORIZING:
                action, self._action = self._action, None
                await self._apply_result(await self._lookup(action.data))
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
        amount_minor = (
            self._capture_request.amount_minor
            if self._capture_request and self._capture_request.amount_minor
            else self._authorized_minor or self._input.amount.minor
        )
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
                result = await self._lookup()
            if result is None or result.status is GatewayPaymentStatus.AUTHORIZED:
                result = await self._gateway_call(
                    act.CAPTURE,
                    CaptureCall(
                        gateway=self._input.gateway.id,
                        payment_id=self._input.payment_id,
                        provider_payment_id=self._view.provider_payment_id,
                        amount=self._input.amount.with_minor(amount_minor),
                        idempotency_key=self._next_key("capture"),
                    ),
                    "capture",
                )
            if result.status not in _NOT_CAPTURED_YET:
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
            looked = await self._lookup()
            if looked.status is GatewayPaymentStatus.SUCCEEDED:
                await self._apply_result(looked)
            else:
                await self._void("abandoned", result.failure or _failure_for(result.status))
            return
        await self._apply_result(result)

    async def _wait_while_authorized(self, done, timeout: timedelta, summary: str) -> bool:
        """Wait up to `timeout` for `done()`, applying webhooks and honouring a cancel meanwhile.
        Returns False when the time ran out."""
        deadline = workflow.now() + timeout
        while self._view.status is PaymentStatus.AUTHORIZED:
            remaining = deadline - workflow.now()
            if remaining <= timedelta(0):
                return False
            try:
                await workflow.wait_condition(
                    lambda: done() or bool(self._events) or self._cancel_request is not None,
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
        result = await self._gateway_call(
            act.CANCEL,
            CancelCall(
                gateway=self._input.gateway.id,
                payment_id=self._input.payment_id,
                provider_payment_id=self._view.provider_payment_id,
                reason=reason,
                idempotency_key=self._next_key("cancel"),
            ),
            "cancel",
        )
        if result.status is GatewayPaymentStatus.DECLINED:
            # The gateway refused the void: what it says the payment is decides.
            result = await self._lookup()
        too_late = {GatewayPaymentStatus.SUCCEEDED}
        if not was_authorized:
            too_late.add(GatewayPaymentStatus.AUTHORIZED)  # the customer finished just in time
        if result.status in too_late:
            await self._apply_result(result)
            return
        self._view.next_action = None
        await self._finish(PaymentStatus.CANCELLED, failure, "payment.cancelled", release_order=True)

    # ---------------------------------------------------------------- settlement

    async def _close(self, *, settle: bool = True) -> PaymentView:
        """Stay open through the settlement window to serialize refunds, disputes and late
        webhooks, then finish once every handler is done and no refund is left unresolved. A
        payment that never reached the gateway (`settle=False`) has nothing to settle and closes
        at once."""
        window = timedelta(seconds=self._input.settings.settlement_window_seconds if settle else 0)
        deadline = workflow.now() + window
        while True:
            await self._settle(deadline)
            # A refund update still at the gateway may leave its refund unresolved: settle again.
            await workflow.wait_condition(workflow.all_handlers_finished)
            if not self._unresolved_refunds():
                return self._view

    async def _settle(self, deadline: datetime) -> None:
        """Apply webhooks until `deadline`, and ask the gateway about refunds whose outcome is
        unknown on a backoff, past the deadline if need be: closing with a refund pending would
        leave it pending on the record for ever."""
        first_poll = timedelta(seconds=self._input.settings.status_poll_seconds)
        poll = first_poll
        while True:
            unresolved = bool(self._unresolved_refunds())
            remaining = deadline - workflow.now()
            if remaining <= timedelta(0) and not unresolved:
                return
            if unresolved:
                timeout = min(remaining, poll) if remaining > timedelta(0) else poll
            else:
                poll = first_poll
                timeout = remaining
            try:
                await workflow.wait_condition(
                    # Also wake when a refund handler leaves a refund unresolved: it needs polling.
                    lambda: bool(self._events) or (not unresolved and bool(self._unresolved_refunds())),  # noqa: B023 (awaited in this iteration)
                    timeout=timeout,
                    timeout_summary="settlement window",
                )
            except TimeoutError:
                if unresolved:
                    await self._poll_pending_refunds()
                    poll = min(poll * 2, MAX_REFUND_POLL_INTERVAL)
                continue
            await self._apply_pending_events()

    def _unresolved_refunds(self) -> list[RefundView]:
        """Pending refunds nobody is waiting on: their gateway call returned without an outcome."""
        return [
            r
            for r in self._view.refunds
            if r.status is RefundStatus.PENDING and r.refund_id not in self._refunds_in_flight
        ]

    async def _poll_pending_refunds(self) -> None:
        for refund in self._unresolved_refunds():
            async with self._gateway_lock:
                if refund.status is not RefundStatus.PENDING:
                    continue  # a webhook settled it while we waited for the lock
                result: RefundResult = await workflow.execute_activity(
                    act.LOOKUP_REFUND,
                    RefundLookupCall(
                        gateway=self._input.gateway.id,
                        payment_id=self._input.payment_id,
                        provider_payment_id=self._view.provider_payment_id,
                        refund_id=refund.refund_id,
                        provider_refund_id=refund.provider_refund_id,
                    ),
                    result_type=RefundResult,
                    summary="lookup refund",
                    **GATEWAY_LOOKUP,
                )
            if result.status is RefundStatus.PENDING and result.provider_refund_id in (
                None,
                refund.provider_refund_id,
            ):
                continue  # nothing new: no transition, so a long wait does not flood the record
            await self._settle_refund(
                refund.refund_id, result.status, result.provider_refund_id, result.failure
            )

    # ---------------------------------------------------------------- gateway calls

    def _key(self, operation: str) -> str:
        return f"{workflow.info().workflow_id}:{operation}"

    def _next_key(self, operation: str) -> str:
        """`<workflow id>:<operation>` for the first call, `...:<operation>:<n>` for the n-th: an
        operation sent again after the provider said the earlier one did not happen must not be
        answered with that earlier attempt's stored response."""
        n = self._attempts[operation] = self._attempts.get(operation, 0) + 1
        return self._key(operation if n == 1 else f"{operation}:{n}")

    async def _gateway_call(self, name: str, call, operation: str) -> GatewayResult:
        """Run a gateway activity; a final refusal becomes a DECLINED result, and an outcome that
        stayed unknown after every retry is resolved by asking the gateway."""
        async with self._gateway_lock:
            try:
                return await workflow.execute_activity(
                    name, call, result_type=GatewayResult, summary=operation, **GATEWAY_CALL
                )
            except ActivityError as err:
                cause = err.cause
                if isinstance(cause, ApplicationError) and cause.non_retryable:
                    # The provider refused the request itself: proof that nothing happened.
                    return GatewayResult(
                        status=GatewayPaymentStatus.DECLINED,
                        provider_payment_id=self._view.provider_payment_id,
                        failure=Failure(code=_snake(cause.type or "gateway_error"), message=cause.message),
                    )
        await self._transition(PaymentStatus.OUTCOME_UNKNOWN, f"payment.{operation}_outcome_unknown")
        return await self._lookup()

    async def _lookup(self, action_data: dict[str, str] | None = None) -> GatewayResult:
        async with self._gateway_lock:
            return await workflow.execute_activity(
                act.LOOKUP,
                LookupCall(
                    gateway=self._input.gateway.id,
                    payment_id=self._input.payment_id,
                    provider_payment_id=self._view.provider_payment_id,
                    amount=self._input.amount,
                    capture_method=self._input.capture_method,
                    method=self._input.method,
                    action_data=action_data or {},
                ),
                result_type=GatewayResult,
                summary="lookup",
                **GATEWAY_LOOKUP,
            )

    async def _apply_result(self, result: GatewayResult) -> None:
        """Move the payment according to what the gateway said. Never backwards."""
        view = self._view
        if result.provider_payment_id:
            view.provider_payment_id = result.provider_payment_id
        if result.provider_response:
            view.provider_response = result.provider_response
        status = result.status
        if status is GatewayPaymentStatus.SUCCEEDED:
            await self._paid(result.captured_minor or result.authorized_minor or self._input.amount.minor)
        elif status is GatewayPaymentStatus.AUTHORIZED:
            if view.status in _OPEN:
                self._authorized_minor = result.authorized_minor or self._input.amount.minor
                view.next_action = None
                await self._transition(PaymentStatus.AUTHORIZED, "payment.authorized")
        elif status in (GatewayPaymentStatus.REQUIRES_ACTION, GatewayPaymentStatus.PROCESSING):
            if view.status in _OPEN:
                if result.next_action:
                    view.next_action = result.next_action
                if view.status is not PaymentStatus.AUTHORIZING:
                    await self._transition(PaymentStatus.AUTHORIZING, "payment.requires_action")
        elif status in (
            GatewayPaymentStatus.DECLINED,
            GatewayPaymentStatus.CANCELLED,
            GatewayPaymentStatus.NOT_FOUND,
        ):
            # Nested, not `and`-ed: an `and` would fall through to the next branch.
            if view.status in _OPEN or view.status is PaymentStatus.AUTHORIZED:
                failure = result.failure or _failure_for(status)
                final = (
                    PaymentStatus.CANCELLED
                    if status is GatewayPaymentStatus.CANCELLED
                    else PaymentStatus.FAILED
                )
                view.next_action = None
                await self._finish(final, failure, f"payment.{final.value}", release_order=True)

    async def _paid(self, captured_minor: int) -> None:
        view = self._view
        if view.status in _SETTLED:
            return
        if view.status in (PaymentStatus.FAILED, PaymentStatus.CANCELLED):
            await self._refund_late_payment(captured_minor)
            return
        view.captured_minor = captured_minor
        view.next_action = None
        view.failure = None
        confirm = workflow.execute_local_activity(
            act.CONFIRM_ORDER,
            OrderRelease(
                order_id=self._input.order_id,
                payment_id=self._input.payment_id,
                merchant_id=self._input.merchant_id,
            ),
            **LOCAL_STEP,
        )
        if workflow.patched(FEWER_LOCAL_STEPS):
            # Both are retried until they are done and neither reads what the other writes: the
            # money moved, the ledger follows it either way (`confirm` logs a conflict, it never
            # refuses), so the store need not wait for it.
            view.completed_at = workflow.now()
            await asyncio.gather(
                confirm,
                self._transition(PaymentStatus.PAID, "payment.captured", "order.paid", "payment.completed"),
            )
        else:
            await confirm
            view.completed_at = workflow.now()
            await self._transition(PaymentStatus.PAID, "payment.captured", "order.paid", "payment.completed")
        # Refund notifications that arrived before this confirmation go first in the queue now.
        self._events[:0], self._early_refund_events = self._early_refund_events, []

    async def _refund_late_payment(self, captured_minor: int) -> None:
        """Money arrived after we gave up on the payment and released the order: give it back.
        The payment keeps its status; the refund is on its record."""
        view = self._view
        view.captured_minor = captured_minor
        await self._transition(None, "payment.late_success")
        await self._refund(RefundRequest(refund_id="late", reason="payment completed after it was closed"))

    async def _fail(self, failure: Failure, *, release_order: bool) -> None:
        await self._finish(PaymentStatus.FAILED, failure, "payment.failed", release_order=release_order)

    async def _finish(
        self, status: PaymentStatus, failure: Failure, event: str, *, release_order: bool
    ) -> None:
        if release_order:
            await workflow.execute_local_activity(
                act.RELEASE_ORDER,
                OrderRelease(
                    order_id=self._input.order_id,
                    payment_id=self._input.payment_id,
                    merchant_id=self._input.merchant_id,
                ),
                **LOCAL_STEP,
            )
        self._view.failure = failure
        self._view.completed_at = workflow.now()
        await self._transition(status, event, data={"code": failure.code})

    # ---------------------------------------------------------------- webhooks

    async def _apply_pending_events(self) -> None:
        while self._events:
            await self._apply_event(self._events.pop(0))

    async def _apply_event(self, event: GatewayEvent) -> None:
        received = PaymentEventRecord(
            type="webhook.received", data={"event_id": event.event_id, "type": event.provider_type}
        )
        if workflow.patched(FEWER_LOCAL_STEPS):
            # Recorded with whatever the event causes, in the same store write; on its own only
            # when it causes nothing.
            self._carried.append(received)
            await self._apply_event_effect(event)
            if self._carried:
                await self._transition(None)
        else:
            await self._transition(None, received.type, data=received.data)
            await self._apply_event_effect(event)

    async def _apply_event_effect(self, event: GatewayEvent) -> None:
        kind = event.kind
        view = self._view
        if event.provider_payment_id and not view.provider_payment_id:
            view.provider_payment_id = event.provider_payment_id
        if kind in (GatewayEventKind.PAYMENT_SUCCEEDED, GatewayEventKind.PAYMENT_AUTHORIZED):
            if view.status in _SETTLED:
                return  # already paid: a late or repeated confirmation changes nothing
            if event.amount is not None and event.amount != self._input.amount:
                # A provider that reports another amount than we asked for is not a payment we
                # can accept as is: record it and let the status lookup tell what really moved.
                if self._carried:
                    # A rare finding about the delivery, not a step of the payment: the record
                    # of the delivery and the finding stay one transition each, as before.
                    await self._transition(None)
                await self._transition(
                    None,
                    "webhook.amount_mismatch",
                    data={"event_id": event.event_id, "amount": str(event.amount)},
                )
                return
            if kind is GatewayEventKind.PAYMENT_SUCCEEDED:
                await self._paid(event.amount.minor if event.amount else self._input.amount.minor)
            else:
                await self._apply_result(GatewayResult(status=GatewayPaymentStatus.AUTHORIZED))
        elif kind is GatewayEventKind.PAYMENT_FAILED:
            # Only a payment still in progress can fail; a failure after success is stale.
            if view.status in _OPEN:
                await self._apply_result(
                    GatewayResult(status=GatewayPaymentStatus.DECLINED, failure=event.failure)
                )
        elif kind is GatewayEventKind.PAYMENT_CANCELLED:
            await self._apply_result(GatewayResult(status=GatewayPaymentStatus.CANCELLED))
        elif kind in (GatewayEventKind.REFUND_SUCCEEDED, GatewayEventKind.REFUND_FAILED):
            await self._apply_refund_event(event)
        elif kind is GatewayEventKind.DISPUTE_OPENED or kind is GatewayEventKind.DISPUTE_CLOSED:
            self._apply_dispute(event)
            await self._transition(
                self._settled_status() if view.status in _SETTLED else None,
                f"dispute.{event.dispute_status or kind.value}",
            )

    async def _apply_refund_event(self, event: GatewayEvent) -> None:
        status = (
            RefundStatus.SUCCEEDED if event.kind is GatewayEventKind.REFUND_SUCCEEDED else RefundStatus.FAILED
        )
        refund = self._find_refund(event.refund_id, event.provider_refund_id)
        if refund is None:
            if (
                status is RefundStatus.FAILED
                or event.amount is None
                or (event.refund_id is None and event.provider_refund_id is None)
            ):
                return
            if self._view.status not in _SETTLED and self._view.status not in FINAL_FAILURE_STATUSES:
                if workflow.patched("hold-refund-events-until-paid"):
                    # Delivery order is not guaranteed: a refund can be notified before the
                    # payment's success. Hold it until the payment settles instead of dropping it.
                    self._early_refund_events.append(event)
                    await self._transition(None, "refund.held_until_paid", data={"event_id": event.event_id})
                    return
            # A refund made outside durapay (e.g. in the provider's dashboard): record it, bounded
            # by what is left to refund so a replayed event can never over-count.
            if event.amount.minor > self._view.captured_minor - self._reserved_refunds():
                await self._transition(None, "refund.unexpected_amount", data={"event_id": event.event_id})
                return
            refund = RefundView(
                refund_id=event.refund_id or f"ext_{event.provider_refund_id}",
                amount=event.amount,
                status=RefundStatus.PENDING,
                provider_refund_id=event.provider_refund_id,
                reason="made at the provider",
                created_at=workflow.now(),
            )
            self._view.refunds.append(refund)
        await self._settle_refund(refund.refund_id, status, event.provider_refund_id, event.failure)

    def _apply_dispute(self, event: GatewayEvent) -> None:
        dispute_id = event.dispute_id or event.event_id
        status = event.dispute_status or (
            "needs_response" if event.kind is GatewayEventKind.DISPUTE_OPENED else "closed"
        )
        for dispute in self._view.disputes:
            if dispute.dispute_id == dispute_id:
                dispute.status = status
                return
        self._view.disputes.append(
            DisputeView(
                dispute_id=dispute_id, status=status, amount=event.amount, reason=event.dispute_reason
            )
        )

    # ---------------------------------------------------------------- refunds

    def _find_refund(self, refund_id: str | None, provider_refund_id: str | None) -> RefundView | None:
        for refund in self._view.refunds:
            if (refund_id and refund.refund_id == refund_id) or (
                provider_refund_id and refund.provider_refund_id == provider_refund_id
            ):
                return refund
        return None

    def _reserved_refunds(self) -> int:
        """Refunded or being refunded: what the next refund must fit beside."""
        return sum(r.amount.minor for r in self._view.refunds if r.status is not RefundStatus.FAILED)

    async def _refund(self, request: RefundRequest) -> RefundView:
        existing = self._find_refund(request.refund_id, None)
        if existing is not None:
            return existing
        # Book the refund before the first await: the validator of an update delivered in the
        # same task runs right after this handler yields and must see what this one reserved.
        amount_minor = request.amount_minor or self._view.captured_minor - self._reserved_refunds()
        refund = RefundView(
            refund_id=request.refund_id,
            amount=self._input.amount.with_minor(amount_minor),
            reason=request.reason,
            status=RefundStatus.PENDING,
            created_at=workflow.now(),
        )
        self._view.refunds.append(refund)
        self._refunds_in_flight.add(refund.refund_id)
        call = RefundCall(
            gateway=self._input.gateway.id,
            payment_id=self._input.payment_id,
            provider_payment_id=self._view.provider_payment_id,
            refund_id=refund.refund_id,
            amount=refund.amount,
            reason=request.reason,
            idempotency_key=self._key(f"refund:{refund.refund_id}"),
        )
        async with self._gateway_lock:
            try:
                result: RefundResult = await workflow.execute_activity(
                    act.REFUND, call, result_type=RefundResult, summary="refund", **GATEWAY_CALL
                )
            except ActivityError as err:
                cause = err.cause
                if isinstance(cause, ApplicationError) and cause.non_retryable:
                    result = RefundResult(
                        refund_id=refund.refund_id,
                        status=RefundStatus.FAILED,
                        failure=Failure(code=_snake(cause.type or "gateway_error"), message=cause.message),
                    )
                else:
                    # Unknown outcome: the refund stays pending and the settlement loop asks
                    # the gateway about it until it knows.
                    result = RefundResult(refund_id=refund.refund_id, status=RefundStatus.PENDING)
        self._refunds_in_flight.discard(refund.refund_id)
        await self._settle_refund(refund.refund_id, result.status, result.provider_refund_id, result.failure)
        return refund

    async def _settle_refund(
        self, refund_id: str, status: RefundStatus, provider_refund_id: str | None, failure: Failure | None
    ) -> None:
        refund = self._find_refund(refund_id, None)
        if refund is None:
            return
        if provider_refund_id:
            refund.provider_refund_id = provider_refund_id
        if refund.status is RefundStatus.SUCCEEDED and status is not RefundStatus.FAILED:
            return  # already counted; a replay must not count it twice
        if refund.status is RefundStatus.FAILED:
            return
        refund.status = status
        refund.failure = failure
        self._view.refunded_minor = sum(
            r.amount.minor for r in self._view.refunds if r.status is RefundStatus.SUCCEEDED
        )
        settled = self._settled_status() if self._view.status in _SETTLED else None
        await self._transition(
            settled, f"refund.{status.value}", data={"refund_id": refund_id, "amount": str(refund.amount)}
        )

    def _settled_status(self) -> PaymentStatus:
        view = self._view
        if any(d.status not in _DISPUTE_CLOSED_IN_OUR_FAVOUR for d in view.disputes):
            return PaymentStatus.DISPUTED
        if view.captured_minor and view.refunded_minor >= view.captured_minor:
            return PaymentStatus.REFUNDED
        if view.refunded_minor:
            return PaymentStatus.PARTIALLY_REFUNDED
        return PaymentStatus.PAID

    # ---------------------------------------------------------------- state and record

    async def _transition(
        self, status: PaymentStatus | None, *events: str, data: dict[str, str] | None = None
    ) -> None:
        """Bump the version, tell the UI and the store. `status=None` records without moving."""
        view = self._view
        if status is not None and status is not view.status:
            view.status = status
            workflow.upsert_search_attributes([sa.PAYMENT_STATUS.value_set(status.value)])
        provider_id = view.provider_payment_id
        if (
            provider_id
            and workflow.info().typed_search_attributes.get(sa.PROVIDER_PAYMENT_ID) != provider_id
            and workflow.patched(INDEX_PROVIDER_ID)
        ):
            workflow.upsert_search_attributes([sa.PROVIDER_PAYMENT_ID.value_set(provider_id)])
        view.version += 1
        view.updated_at = workflow.now()
        workflow.set_current_details(self._details())
        records, self._carried = (
            [*self._carried, *(PaymentEventRecord(type=e, data=data or {}) for e in events)],
            [],
        )
        await workflow.execute_local_activity(
            act.RECORD_TRANSITION,
            PaymentTransition(view=view, events=records),
            **LOCAL_STEP,
        )

    def _details(self) -> str:
        view = self._view
        lines = [
            f"**{view.status.value}** · {view.amount} · order `{view.order_id}` · {view.gateway}",
        ]
        if view.captured_minor:
            lines.append(f"captured {view.amount.with_minor(view.captured_minor)}")
        if view.refunded_minor:
            lines.append(f"refunded {view.amount.with_minor(view.refunded_minor)}")
        if view.failure:
            lines.append(f"failure: `{view.failure.code}` {view.failure.message}")
        if view.next_action:
            lines.append(f"waiting for the customer: {view.next_action.type.value}")
        if view.disputes:
            lines.append("disputes: " + ", ".join(f"{d.dispute_id} ({d.status})" for d in view.disputes))
        return "\n\n".join(lines)

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
        if request.request_fingerprint != self._input.request_fingerprint:
            raise ApplicationError(
                "this Idempotency-Key was already used for a different request",
                type=Rejection.IDEMPOTENCY_KEY_REUSED,
                non_retryable=True,
            )

    @workflow.update
    async def capture(self, request: CaptureRequest) -> PaymentView:
        self._capture_request = request
        # OUTCOME_UNKNOWN is a step of the capture itself, not its outcome.
        await workflow.wait_condition(
            lambda: self._view.status not in (PaymentStatus.AUTHORIZED, PaymentStatus.OUTCOME_UNKNOWN)
        )
        return self._view

    @capture.validator
    def _validate_capture(self, request: CaptureRequest) -> None:
        if self._input.capture_method is not CaptureMethod.MANUAL:
            _reject(Rejection.INVALID_STATE, "this payment captures automatically")
        if self._view.status is not PaymentStatus.AUTHORIZED or self._capture_request is not None:
            _reject(Rejection.INVALID_STATE, f"a {self._view.status.value} payment cannot be captured")
        authorized = self._authorized_minor or self._input.amount.minor
        if request.amount_minor is not None:
            if request.amount_minor > authorized:
                _reject(
                    Rejection.AMOUNT_EXCEEDS,
                    f"at most {self._input.amount.with_minor(authorized)} can be captured",
                )
            if request.amount_minor < authorized and not self._input.gateway.supports_partial_capture:
                _reject(Rejection.NOT_SUPPORTED, f"{self._input.gateway.name} does not capture partially")

    @workflow.update
    async def cancel(self, request: CancelRequest) -> PaymentView:
        self._cancel_request = request
        # OUTCOME_UNKNOWN is a step (of the void, or of the authorization it raced), not an outcome.
        await workflow.wait_condition(
            lambda: self._view.status not in (*_CANCELLABLE, PaymentStatus.OUTCOME_UNKNOWN)
        )
        return self._view

    @cancel.validator
    def _validate_cancel(self, request: CancelRequest) -> None:
        if self._view.status not in _CANCELLABLE:
            _reject(
                Rejection.INVALID_STATE,
                f"a {self._view.status.value} payment cannot be cancelled; refund it instead",
            )

    @workflow.update
    async def refund(self, request: RefundRequest) -> RefundView:
        return await self._refund(request)

    @refund.validator
    def _validate_refund(self, request: RefundRequest) -> None:
        if self._find_refund(request.refund_id, None) is not None:
            return  # a replay of the same refund request: answered with the refund as it is
        if self._view.status not in _SETTLED:
            _reject(Rejection.INVALID_STATE, f"a {self._view.status.value} payment cannot be refunded")
        left = self._view.captured_minor - self._reserved_refunds()
        if left <= 0:
            _reject(Rejection.AMOUNT_EXCEEDS, "the payment is already fully refunded")
        if request.amount_minor is not None and request.amount_minor > left:
            _reject(
                Rejection.AMOUNT_EXCEEDS,
                f"at most {self._input.amount.with_minor(left)} is left to refund",
            )

    @workflow.signal
    def action_completed(self, completion: ActionCompleted) -> None:
        self._action = completion

    @workflow.signal
    def gateway_event(self, event: GatewayEvent) -> None:
        # Providers deliver at least once: apply each event id once.
        if event.event_id in self._seen_event_ids:
            return
        self._seen_event_ids.add(event.event_id)
        self._events.append(event)


def _reject(rejection: Rejection, message: str) -> None:
    raise ApplicationError(message, type=rejection, non_retryable=True)


def _snake(error_type: str) -> str:
    """`GatewayInvalidRequest` -> `gateway_invalid_request`, for failure codes."""
    out = []
    for i, ch in enumerate(error_type):
        if ch.isupper() and i:
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


def _failure_for(status: GatewayPaymentStatus) -> Failure:
    if status is GatewayPaymentStatus.NOT_FOUND:
        return Failure(
            code="not_processed", message="the gateway has no record of this payment: nothing was charged"
        )
    if status is GatewayPaymentStatus.CANCELLED:
        return Failure(code="cancelled", message="the payment was cancelled at the gateway")
    return Failure(code="declined", message="the gateway declined the payment")
