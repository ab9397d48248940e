"""How everything outside the workflow talks to a payment's `PaymentWorkflow`.

The one place that knows the workflow id format, the update ids, which signal, update or query
carries what, and how Temporal says "no such workflow". The API, the webhook receiver,
reconciliation and the benchmark go through `PaymentWorkflows`; none of them builds a workflow id
or names a workflow handler itself.

This is client code (it performs I/O through a Temporal `Client`): the workflow never imports it,
so the workflow sandbox never loads it (tests/workflows/test_client.py holds that).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowHandle,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from workflows import search_attributes as sa
from workflows.domain import CardMethod, PaymentInput, PaymentStatus, PaymentView, RefundView
from workflows.gateway_io import GatewayEvent
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
from workflows.payment import PaymentWorkflow


def workflow_id(payment_id: str) -> str:
    return f"payment-{payment_id}"


def merchant_webhooks_workflow_id(payment_id: str) -> str:
    """The id of the workflow delivering the payment's merchant webhooks (workflows/merchant_webhooks.py)."""
    return f"merchant-webhooks-{payment_id}"


def payment_id_from(payment_workflow_id: str) -> str:
    """The payment id inside a payment workflow id; ValueError for any other workflow id."""
    prefix = workflow_id("")
    payment_id = payment_workflow_id.removeprefix(prefix)
    if payment_id == payment_workflow_id or not payment_id:
        raise ValueError(f"{payment_workflow_id!r} is not a payment workflow id")
    return payment_id


class PaymentNotRunning(Exception):
    """The payment has no running workflow: never started, or closed after its settlement window.

    Signals and updates reach only a running workflow; a query still reaches a closed one until
    Temporal's retention removes it; a start under the id of a closed one is refused (starting
    it again would charge a second time for one idempotency key)."""

    def __init__(self, payment_id: str) -> None:
        super().__init__(f"payment {payment_id} has no running workflow")
        self.payment_id = payment_id


class PaymentWorkflows:
    """The payment workflows behind one Temporal client.

    Errors: `PaymentNotRunning` as above; `WorkflowUpdateFailedError` when the workflow rejects
    an update (its cause carries a `workflows.rejections.Rejection` type); any other `RPCError`
    is Temporal being unreachable or overloaded, left to the caller."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def _handle(self, payment_id: str) -> WorkflowHandle:
        return self._client.get_workflow_handle(workflow_id(payment_id))

    async def start_and_decide(self, payment_input: PaymentInput, *, task_queue: str) -> PaymentView:
        """Start the payment's workflow unless it runs already, and wait until it is decided
        (paid, authorized, failed, or waiting on the customer or the provider)."""
        operation = WithStartWorkflowOperation(
            PaymentWorkflow.run,
            payment_input,
            id=workflow_id(payment_input.payment_id),
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            # A payment whose workflow has closed (after its settlement window) is never started
            # again under the same id: that would be a second charge for one idempotency key.
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=_search_attributes(payment_input),
            static_summary=_summary(payment_input),
            static_details=_details(payment_input),
        )
        try:
            return await self._client.execute_update_with_start_workflow(
                PaymentWorkflow.decide,
                DecisionRequest(request_fingerprint=payment_input.request_fingerprint),
                start_workflow_operation=operation,
                # One update per distinct request: a replay attaches to the first one and gets
                # its answer, instead of adding an update to the history on every retry.
                id=f"decide:{payment_input.request_fingerprint[:32]}",
            )
        except (RPCError, WorkflowAlreadyStartedError, WorkflowUpdateRPCTimeoutOrCancelledError) as exc:
            # When the start fails, the SDK also fails the operation's handle with the same error;
            # retrieve it, or asyncio logs "Future exception was never retrieved". Bounded in case
            # a future SDK leaves the handle pending instead.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(operation.workflow_handle(), timeout=1)
            if isinstance(exc, WorkflowAlreadyStartedError):
                raise PaymentNotRunning(payment_input.payment_id) from None
            raise

    async def reopen(
        self, payment_input: PaymentInput, *, task_queue: str
    ) -> WorkflowHandle[PaymentWorkflow, PaymentView]:
        """Start a closed payment again from its stored state (`payment_input.resume`; see
        activities/reopen.py), or take the run another request reopened first."""
        return await self._client.start_workflow(
            PaymentWorkflow.run,
            payment_input,
            id=workflow_id(payment_input.payment_id),
            task_queue=task_queue,
            # Unlike `start_and_decide`: the run resumes in the settlement phase, where nothing
            # authorizes or captures, so a new run under the closed one's id charges nothing.
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            search_attributes=_search_attributes(payment_input),
        )

    async def reopen_with_event(
        self, payment_input: PaymentInput, event: GatewayEvent, *, task_queue: str
    ) -> WorkflowHandle[PaymentWorkflow, PaymentView]:
        """`gateway_event` for a payment that may have closed: signal-with-start, so the event
        cannot miss the run (reopened from `payment_input` as in `reopen` if none is open)."""
        return await self._client.start_workflow(
            PaymentWorkflow.run,
            payment_input,
            id=workflow_id(payment_input.payment_id),
            task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            start_signal=PaymentWorkflow.gateway_event.__name__,
            start_signal_args=[event],
            search_attributes=_search_attributes(payment_input),
        )

    async def exists(self, payment_id: str) -> bool:
        """Whether Temporal holds the payment's workflow, running or closed."""
        try:
            await self._handle(payment_id).describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return False
            raise
        return True

    async def view(self, payment_id: str) -> PaymentView:
        with _running(payment_id):
            return await self._handle(payment_id).query(PaymentWorkflow.view)

    async def capture(
        self, payment_id: str, request: CaptureRequest, *, idempotency_token: str
    ) -> PaymentView:
        """`idempotency_token`: the same for every retry of one capture. It is kept in the
        workflow's history and shown in its UI, so never raw caller text."""
        with _running(payment_id):
            return await self._handle(payment_id).execute_update(
                PaymentWorkflow.capture, request, id=f"capture:{idempotency_token}"
            )

    async def cancel(self, payment_id: str, request: CancelRequest, *, idempotency_token: str) -> PaymentView:
        """`idempotency_token` as for `capture`."""
        with _running(payment_id):
            return await self._handle(payment_id).execute_update(
                PaymentWorkflow.cancel, request, id=f"cancel:{idempotency_token}"
            )

    async def review(
        self, payment_id: str, request: ReviewDecision, *, idempotency_token: str
    ) -> PaymentView:
        """An operator's decision on a payment held for review; `idempotency_token` as for `capture`."""
        with _running(payment_id):
            return await self._handle(payment_id).execute_update(
                PaymentWorkflow.review, request, id=f"review:{idempotency_token}"
            )

    async def refund(self, payment_id: str, request: RefundRequest) -> RefundView:
        # The refund id is the caller's idempotency token already.
        with _running(payment_id):
            return await self._handle(payment_id).execute_update(
                PaymentWorkflow.refund, request, id=f"refund:{request.refund_id}"
            )

    async def confirm_bank_transfer(self, payment_id: str, receipt: BankTransferReceipt) -> PaymentView:
        """Money received by bank transfer. One update id per credit (the bank's reference), so a
        re-sent confirmation of the same credit is the same update."""
        with _running(payment_id):
            return await self._handle(payment_id).execute_update(
                PaymentWorkflow.confirm_bank_transfer, receipt, id=f"bank-transfer:{receipt.bank_reference}"
            )

    async def resolve_bank_transfer(
        self, payment_id: str, resolution: BankTransferResolution, *, idempotency_token: str
    ) -> PaymentView:
        """`idempotency_token` as for `capture`."""
        with _running(payment_id):
            return await self._handle(payment_id).execute_update(
                PaymentWorkflow.resolve_bank_transfer,
                resolution,
                id=f"bank-transfer-review:{idempotency_token}",
            )

    async def gateway_event(self, payment_id: str, event: GatewayEvent) -> None:
        """A verified provider event (or reconciliation's synthetic one). The workflow applies
        each event id once, so sending one again is harmless."""
        with _running(payment_id):
            await self._handle(payment_id).signal(PaymentWorkflow.gateway_event, event)

    async def action_completed(self, payment_id: str, completion: ActionCompleted) -> None:
        """The customer is back from 3-D Secure or a redirect: only a hint, the workflow asks the
        gateway."""
        with _running(payment_id):
            await self._handle(payment_id).signal(PaymentWorkflow.action_completed, completion)


@contextlib.contextmanager
def _running(payment_id: str) -> Iterator[None]:
    """Temporal's NOT_FOUND as `PaymentNotRunning`; any other RPC error stays what it is."""
    try:
        yield
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise PaymentNotRunning(payment_id) from None
        raise


# What the Temporal UI shows of a payment from its start; the workflow keeps them current.


def _search_attributes(payment_input: PaymentInput) -> TypedSearchAttributes:
    return TypedSearchAttributes(
        [
            SearchAttributePair(sa.PAYMENT_STATUS, PaymentStatus.PENDING.value),
            SearchAttributePair(sa.GATEWAY, payment_input.gateway.id),
            SearchAttributePair(sa.ORDER_ID, payment_input.order_id),
            SearchAttributePair(sa.CURRENCY, payment_input.amount.currency),
            SearchAttributePair(sa.AMOUNT_MINOR, payment_input.amount.minor),
            SearchAttributePair(sa.MERCHANT_ID, payment_input.merchant_id),
            *(
                [SearchAttributePair(sa.CUSTOMER_ID, payment_input.customer_id)]
                if payment_input.customer_id
                else []
            ),
        ]
    )


def _summary(payment_input: PaymentInput) -> str:
    return (
        f"{payment_input.amount} · order {payment_input.order_id} · {payment_input.gateway.id}"
        f" · merchant {payment_input.merchant_id}"
    )


def _details(payment_input: PaymentInput) -> str:
    method = payment_input.method
    method_text: str = method.type
    if isinstance(method, CardMethod) and method.last4:
        method_text = f"card {method.brand or ''} ····{method.last4}".replace("  ", " ")
    rows = [
        ("payment", f"`{payment_input.payment_id}`"),
        ("merchant", f"`{payment_input.merchant_id}`"),
        ("order", f"`{payment_input.order_id}`"),
        ("amount", str(payment_input.amount)),
        ("gateway", payment_input.gateway.name),
        ("method", method_text),
        ("capture", payment_input.capture_method.value),
    ]
    if payment_input.customer_id:
        rows.append(("customer", f"`{payment_input.customer_id}`"))
    return "| | |\n|---|---|\n" + "\n".join(f"| {name} | {value} |" for name, value in rows)
