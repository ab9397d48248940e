"""The payment store as a Temporal (local) activity: the workflow records every transition, with
the merchant events it raised; events to deliver wake the payment's webhook delivery, without the
payment waiting for it (activities/merchant_webhooks.py, `DeliveryWaker`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import activity

from activities.merchant_webhooks import EndpointFor, first_status
from activities.metrics import PaymentMetrics
from activities.store.repository import PaymentStore
from workflows import activity_names
from workflows.ledger_io import PaymentTransition
from workflows.merchant_events import DeliveryStatus, merchant_events


class StoreActivities:
    def __init__(
        self,
        store: PaymentStore,
        metrics: PaymentMetrics | None = None,
        *,
        endpoint_for: EndpointFor = lambda _merchant: None,
        wake_delivery: Callable[[str], None] | None = None,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._endpoint_for = endpoint_for
        self._wake_delivery = wake_delivery

    @activity.defn(name=activity_names.RECORD_TRANSITION)
    async def record_transition(self, t: PaymentTransition) -> None:
        # Idempotent and version-ordered in the store, so Temporal may retry it freely; counted
        # only by the call that stored it, so a retry does not count twice. A retry after the
        # store committed wakes the delivery again, which is harmless.
        merchant = [(event, first_status(event, self._endpoint_for)) for event in merchant_events(t)]
        if await self._store.record_transition(t, merchant) and self._metrics is not None:
            self._metrics.observe(t)
        if self._wake_delivery and any(status is DeliveryStatus.PENDING for _, status in merchant):
            self._wake_delivery(t.view.id)

    def definitions(self) -> list[Callable[..., Any]]:
        return [self.record_transition]
