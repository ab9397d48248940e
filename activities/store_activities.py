"""The payment store as a Temporal (local) activity: the workflow records every transition."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import activity

from activities.metrics import PaymentMetrics
from activities.store.repository import PaymentStore
from workflows import activity_names
from workflows.ledger_io import PaymentTransition


class StoreActivities:
    def __init__(self, store: PaymentStore, metrics: PaymentMetrics | None = None) -> None:
        self._store = store
        self._metrics = metrics

    @activity.defn(name=activity_names.RECORD_TRANSITION)
    async def record_transition(self, t: PaymentTransition) -> None:
        # Idempotent and version-ordered in the store, so Temporal may retry it freely; counted
        # only by the call that stored it, so a retry does not count twice.
        if await self._store.record_transition(t) and self._metrics is not None:
            self._metrics.observe(t)

    def definitions(self) -> list[Callable[..., Any]]:
        return [self.record_transition]
