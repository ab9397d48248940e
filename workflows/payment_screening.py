"""A payment's steps about where it goes and its risk, from inside PaymentWorkflow: the routing
choice, the fraud rules, the screening service, the hold for an operator's review, and the feedback
the screening service gets afterwards.

Workflow code (it runs activities), held by the workflow like PaymentGateway; what the answers mean
is PaymentState's business (workflows/payment_review_state.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from workflows import activity_names as act
    from workflows.activity_options import FRAUD_FEEDBACK, LOCAL_STEP
    from workflows.activity_options import FRAUD_SCREENING as FRAUD_SCREENING_CALL
    from workflows.domain import (
        CardMethod,
        FraudResult,
        PaymentInput,
        PaymentStatus,
        ReviewDecisionKind,
        RoutingRequest,
    )
    from workflows.fraud_io import FeedbackCall, ScreeningCall, ScreeningVerdict
    from workflows.ledger_io import FraudCheckRequest
    from workflows.messages import CancelRequest, ReviewDecision
    from workflows.patches import FRAUD_SCREENING
    from workflows.payment_effects import Effect
    from workflows.payment_review_state import screened
    from workflows.payment_state import PaymentState
    from workflows.routing_io import RoutingCall, RoutingDecision


class PaymentScreening:
    def __init__(
        self, input: PaymentInput, state: PaymentState, *, run: Callable[[list[Effect]], Awaitable[None]]
    ) -> None:
        """`run(effects)` carries out what the state decided (the workflow's)."""
        self._input = input
        self._state = state
        self._run = run
        self._feedback_tasks: set[asyncio.Task[None]] = set()  # fraud feedback under way

    async def route(self, request: RoutingRequest) -> RoutingDecision:
        """Which gateway the payment should go to (the workflow's default among the candidates)."""
        decision: RoutingDecision = await workflow.execute_local_activity(
            act.ROUTE_PAYMENT,
            RoutingCall(
                amount=self._input.amount,
                method=self._input.method,
                merchant=request.merchant,
                default=self._input.gateway,
            ),
            result_type=RoutingDecision,
            **LOCAL_STEP,
        )
        return decision

    async def review(
        self,
        decision: Callable[[], ReviewDecision | None],
        cancel: Callable[[], CancelRequest | None],
    ) -> bool:
        """Hold the payment for an operator until a decision (the `review` update), a cancel, or
        the policy's deadline, which rejects. True when approved. `decision()` and `cancel()` are the
        workflow's requests so far."""
        if self._state.view.status is not PaymentStatus.REQUIRES_REVIEW:
            await self._run(self._state.begin_review())
        review = self._state.view.review
        assert review is not None
        request: ReviewDecision | None = None
        try:
            await workflow.wait_condition(
                lambda: decision() is not None or cancel() is not None,
                timeout=max(review.deadline - workflow.now(), timedelta(seconds=1)),
                timeout_summary="waiting for a review decision",
            )
            cancelled = cancel()
            request = decision() or ReviewDecision(
                decision=ReviewDecisionKind.REJECT,
                note=cancelled.reason if cancelled else None,
                decided_by="cancel",
            )
        except TimeoutError:
            pass  # nobody decided in time: rejected
        await self._run(self._state.decide_review(request))
        return self._state.review_approved()

    async def check_fraud(self) -> FraudResult:
        method = self._input.method
        card = method if isinstance(method, CardMethod) else None
        fraud: FraudResult = await workflow.execute_local_activity(
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
        return fraud

    async def screen(self, rules: FraudResult) -> FraudResult:
        """Ask the screening service the rules left the payment to, if any. Its budget is short:
        when it stays unreachable (or refuses the request) the policy's fallback decides, and the
        payment goes on."""
        policy = rules.policy
        if policy is None or policy.provider is None or not workflow.patched(FRAUD_SCREENING.id):
            return rules
        inp = self._input
        card = inp.method if isinstance(inp.method, CardMethod) else None
        call = ScreeningCall(
            provider=policy.provider,
            payment_id=inp.payment_id,
            order_id=inp.order_id,
            amount=inp.amount,
            method_type=inp.method.type,
            gateway=inp.gateway.id,
            card_last4=card.last4 if card else None,
            card_brand=card.brand if card else None,
            card_country=card.country if card else None,
            card_fingerprint=card.fingerprint if card else None,
            customer_id=inp.customer_id,
            customer_email=inp.customer_email,
            customer_ip=inp.customer_ip,
        )
        try:
            verdict: ScreeningVerdict | None = await workflow.execute_activity(
                act.SCREEN_FRAUD,
                call,
                result_type=ScreeningVerdict,
                summary=f"screen with {policy.provider}",
                **FRAUD_SCREENING_CALL,
            )
        except ActivityError as err:
            workflow.logger.warning("fraud screening by %s failed: %s", policy.provider, err.cause)
            verdict = None
        return screened(rules, verdict)

    def send_feedback(self, call: FeedbackCall) -> None:
        """Start the feedback call beside the payment: nothing waits for it, and a service that
        never takes it costs the payment nothing (the failure is logged)."""

        async def send() -> None:
            try:
                await workflow.execute_activity(
                    act.FRAUD_FEEDBACK,
                    call,
                    result_type=bool,
                    summary=f"{call.kind.value} feedback to {call.provider}",
                    **FRAUD_FEEDBACK,
                )
            except ActivityError as err:
                workflow.logger.warning("fraud feedback to %s failed: %s", call.provider, err.cause)

        task = asyncio.create_task(send())
        self._feedback_tasks.add(task)
        task.add_done_callback(self._feedback_tasks.discard)
