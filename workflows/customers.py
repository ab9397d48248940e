"""The workflows that save and detach a customer's payment method at its gateway.

Each is a couple of gateway calls, but each call changes something at the provider: run as activities
with idempotency keys, a crash of the API or the worker half-way leaves a workflow that finishes the
job (and a retried request that attaches to it) rather than a customer created twice or a method
saved at the provider that durapay never recorded.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from workflows import activity_names as act
    from workflows.customer_io import (
        AttachMethodCall,
        DetachMethodRequest,
        GatewayCustomerCall,
        SavedMethodRecord,
        SaveMethodRequest,
    )

CALL_TIMEOUT = timedelta(seconds=30)
# Gateway errors that are final (refused, not supported) come back non-retryable; the rest retry.
CALL_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=30), maximum_attempts=10)


def save_workflow_id(method_id: str) -> str:
    return f"saved-method-{method_id}"


def detach_workflow_id(method_id: str) -> str:
    return f"saved-method-{method_id}-detach"


@workflow.defn
class SavePaymentMethodWorkflow:
    @workflow.run
    async def run(self, request: SaveMethodRequest) -> SavedMethodRecord:
        provider_customer_id: str = await workflow.execute_activity(
            act.ENSURE_GATEWAY_CUSTOMER,
            GatewayCustomerCall(
                customer_id=request.customer_id,
                gateway=request.gateway,
                email=request.email,
                name=request.name,
                # One gateway-side customer per (our customer, gateway), whichever request makes it.
                idempotency_key=f"durapay-customer-{request.customer_id}-{request.gateway}",
            ),
            result_type=str,
            summary=f"customer at {request.gateway}",
            start_to_close_timeout=CALL_TIMEOUT,
            retry_policy=CALL_RETRY,
        )
        return await workflow.execute_activity(
            act.ATTACH_PAYMENT_METHOD,
            AttachMethodCall(request=request, provider_customer_id=provider_customer_id),
            result_type=SavedMethodRecord,
            summary=f"attach at {request.gateway}",
            start_to_close_timeout=CALL_TIMEOUT,
            retry_policy=CALL_RETRY,
        )


@workflow.defn
class DetachPaymentMethodWorkflow:
    @workflow.run
    async def run(self, request: DetachMethodRequest) -> SavedMethodRecord:
        return await workflow.execute_activity(
            act.DETACH_PAYMENT_METHOD,
            request,
            result_type=SavedMethodRecord,
            summary="detach",
            start_to_close_timeout=CALL_TIMEOUT,
            retry_policy=CALL_RETRY,
        )
