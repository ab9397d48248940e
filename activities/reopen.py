"""Starting a closed payment's workflow again, on demand, from the store's projection.

A payment's workflow closes once its gateway's window has passed (or, for a payment started before
`long-lived-payments`, after its 30-day settlement window). A refund asked for later, or a provider
event that still comes (a chargeback, a refund made in the provider's dashboard), starts a fresh
run of `PaymentWorkflow` under the same id from the stored view: it goes straight to the settlement
phase (it can never authorize or capture), takes the request or the event, records it, and closes
again after a short while (workflows/payment.py, `REOPENED_FOR`).

The API (refunds, provider webhooks; through `api.ports.PaymentReopener`) and reconciliation's
repairs use it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from temporalio.client import Client, WorkflowHandle

from workflows.client import PaymentWorkflows
from workflows.domain import GatewayProfile, PaymentInput, PaymentSettings, PaymentView
from workflows.gateway_io import GatewayEvent
from workflows.payment import PaymentWorkflow
from workflows.payment_resume import reopening


@dataclass(frozen=True)
class Reopener:
    client: Client
    task_queue: str
    stored_view: Callable[[str], Awaitable[PaymentView | None]]  # the store's projection
    profile_for: Callable[[str], GatewayProfile | None]  # a configured gateway's profile
    settings_for: Callable[[str], PaymentSettings]  # by currency, as new payments get them

    async def start(self, payment_id: str) -> WorkflowHandle[PaymentWorkflow, PaymentView] | None:
        """A running workflow for the stored payment (the one already running, if another request
        reopened it first); None when the store does not know the payment."""
        payment_input = await self._input(payment_id)
        if payment_input is None:
            return None
        return await PaymentWorkflows(self.client).reopen(payment_input, task_queue=self.task_queue)

    async def signal(
        self, payment_id: str, event: GatewayEvent
    ) -> WorkflowHandle[PaymentWorkflow, PaymentView] | None:
        """Deliver a provider event to the payment, starting a run if none is open
        (signal-with-start: the event cannot miss the run). None when the store does not know
        the payment."""
        payment_input = await self._input(payment_id)
        if payment_input is None:
            return None
        return await PaymentWorkflows(self.client).reopen_with_event(
            payment_input, event, task_queue=self.task_queue
        )

    async def _input(self, payment_id: str) -> PaymentInput | None:
        view = await self.stored_view(payment_id)
        if view is None:
            return None
        profile = self.profile_for(view.gateway)
        if profile is None:
            return None  # the gateway is no longer configured: nothing could refund through it
        return reopening(view, profile, self.settings_for(view.amount.currency))
