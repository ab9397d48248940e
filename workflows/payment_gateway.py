"""A payment's calls to its gateway, from inside PaymentWorkflow: one at a time (refund updates and
the main path both call), each with its idempotency key, a refusal turned into a failure.

Workflow code (it runs activities); what the answers mean is PaymentState's business.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from workflows import activity_names as act
    from workflows.activity_options import GATEWAY_CALL, GATEWAY_LOOKUP
    from workflows.domain import PaymentInput, RefundStatus, RefundView
    from workflows.gateway_io import (
        AuthorizeCall,
        CancelCall,
        CaptureCall,
        GatewayPaymentStatus,
        GatewayResult,
        LookupCall,
        RefundCall,
        RefundLookupCall,
        RefundResult,
    )
    from workflows.payment_state import PaymentState, refused_failure


class PaymentGateway:
    def __init__(
        self,
        input: PaymentInput,
        state: PaymentState,
        *,
        outcome_unknown: Callable[[str], Awaitable[None]],
    ) -> None:
        """`outcome_unknown(operation)` runs when a money-moving call stayed unknown after every
        retry, before the gateway is asked what happened."""
        self._input = input
        self._state = state
        self._outcome_unknown = outcome_unknown
        self._lock = asyncio.Lock()
        self._attempts: dict[str, int] = {}  # per operation, for `_next_key`

    def _key(self, operation: str) -> str:
        return f"{workflow.info().workflow_id}:{operation}"

    def _next_key(self, operation: str) -> str:
        """`<workflow id>:<operation>` for the first call, `...:<operation>:<n>` for the n-th: an
        operation sent again after the provider said the earlier one did not happen must not be
        answered with that earlier attempt's stored response."""
        n = self._attempts[operation] = self._attempts.get(operation, 0) + 1
        return self._key(operation if n == 1 else f"{operation}:{n}")

    async def authorize(self) -> GatewayResult:
        inp = self._input
        call = AuthorizeCall(
            gateway=inp.gateway.id,
            payment_id=inp.payment_id,
            order_id=inp.order_id,
            amount=inp.amount,
            method=inp.method,
            capture=self._state.capture_now(),
            request_three_ds=self._state.request_three_ds(),
            # A saved method is charged with the gateway's customer it was saved for.
            customer_id=inp.provider_customer_id or inp.customer_id,
            customer_email=inp.customer_email,
            customer_ip=inp.customer_ip,
            return_url=inp.return_url,
            description=inp.description,
            metadata=inp.metadata,
            idempotency_key=self._key("authorize"),
            expires_at=workflow.now() + self._state.action_timeout(),
        )
        return await self._call(act.AUTHORIZE, call, "authorize")

    async def capture(self, amount_minor: int) -> GatewayResult:
        call = CaptureCall(
            gateway=self._input.gateway.id,
            payment_id=self._input.payment_id,
            provider_payment_id=self._state.view.provider_payment_id,
            amount=self._input.amount.with_minor(amount_minor),
            idempotency_key=self._next_key("capture"),
        )
        return await self._call(act.CAPTURE, call, "capture")

    async def cancel(self, reason: str) -> GatewayResult:
        call = CancelCall(
            gateway=self._input.gateway.id,
            payment_id=self._input.payment_id,
            provider_payment_id=self._state.view.provider_payment_id,
            reason=reason,
            idempotency_key=self._next_key("cancel"),
        )
        return await self._call(act.CANCEL, call, "cancel")

    async def _call(self, name: str, call: BaseModel, operation: str) -> GatewayResult:
        """Run a gateway activity; a final refusal becomes a DECLINED result, and an outcome that
        stayed unknown after every retry is resolved by asking the gateway."""
        async with self._lock:
            try:
                result: GatewayResult = await workflow.execute_activity(
                    name, call, result_type=GatewayResult, summary=operation, **GATEWAY_CALL
                )
                return result
            except ActivityError as err:
                cause = err.cause
                if isinstance(cause, ApplicationError) and cause.non_retryable:
                    # The provider refused the request itself: proof that nothing happened.
                    return GatewayResult(
                        status=GatewayPaymentStatus.DECLINED,
                        provider_payment_id=self._state.view.provider_payment_id,
                        failure=refused_failure(cause.type, cause.message),
                    )
        await self._outcome_unknown(operation)
        return await self.lookup()

    async def lookup(self, action_data: dict[str, str] | None = None) -> GatewayResult:
        """`action_data`: what the customer's return carried (None: not asked for a return)."""
        async with self._lock:
            result: GatewayResult = await workflow.execute_activity(
                act.LOOKUP,
                LookupCall(
                    gateway=self._input.gateway.id,
                    payment_id=self._input.payment_id,
                    provider_payment_id=self._state.view.provider_payment_id,
                    amount=self._input.amount,
                    capture_method=self._input.capture_method,
                    method=self._input.method,
                    action_data=action_data or {},
                    customer_returned=action_data is not None,
                    created_at=self._state.view.created_at,
                ),
                result_type=GatewayResult,
                summary="lookup",
                **GATEWAY_LOOKUP,
            )
            return result

    async def refund(self, refund: RefundView) -> RefundResult:
        """Refund `refund` (booked by `PaymentState.book_refund`). PENDING: the outcome is unknown."""
        call = RefundCall(
            gateway=self._input.gateway.id,
            payment_id=self._input.payment_id,
            provider_payment_id=self._state.view.provider_payment_id,
            refund_id=refund.refund_id,
            amount=refund.amount,
            reason=refund.reason,
            idempotency_key=self._key(f"refund:{refund.refund_id}"),
        )
        async with self._lock:
            try:
                result: RefundResult = await workflow.execute_activity(
                    act.REFUND, call, result_type=RefundResult, summary="refund", **GATEWAY_CALL
                )
                return result
            except ActivityError as err:
                cause = err.cause
                if isinstance(cause, ApplicationError) and cause.non_retryable:
                    return RefundResult(
                        refund_id=refund.refund_id,
                        status=RefundStatus.FAILED,
                        failure=refused_failure(cause.type, cause.message),
                    )
                # Unknown outcome: the refund stays pending and the settlement loop asks the
                # gateway about it until it knows.
                return RefundResult(refund_id=refund.refund_id, status=RefundStatus.PENDING)

    async def lookup_refund(self, refund: RefundView) -> RefundResult | None:
        """What the gateway says of a pending refund; None if it was settled while we waited."""
        async with self._lock:
            if refund.status is not RefundStatus.PENDING:
                return None  # a webhook settled it while we waited for the lock
            result: RefundResult = await workflow.execute_activity(
                act.LOOKUP_REFUND,
                RefundLookupCall(
                    gateway=self._input.gateway.id,
                    payment_id=self._input.payment_id,
                    provider_payment_id=self._state.view.provider_payment_id,
                    refund_id=refund.refund_id,
                    provider_refund_id=refund.provider_refund_id,
                    requested_at=refund.created_at,
                ),
                result_type=RefundResult,
                summary="lookup refund",
                **GATEWAY_LOOKUP,
            )
            return result
