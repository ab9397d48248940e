"""Reconciliation: walk the payment store over a time range, ask each payment's gateway what it knows
(`Gateway.lookup` by our reference, `lookup_refund` for refunds still pending), compare, report the
drift, and with `repair` hand the provider's view to the payment's workflow as a synthetic event.

Repairs never write the store: the event goes through `PaymentWorkflow.gateway_event` like a
verified webhook, so the workflow's own rules decide (never backwards, an amount it did not ask for
is not accepted as is, a payment that arrived after we gave up is refunded) and its de-duplication
holds: the event id is derived from the payment and the provider's status
(`reconcile:<payment>:<status>`), so running reconciliation again never applies anything twice.

`durapay reconcile` (workers/reconcile.py) runs a `Reconciler` directly; the scheduled
`ReconciliationWorkflow` runs it through `ReconciliationActivities`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from temporalio import activity
from temporalio.client import Client

from activities.gateway_activities import safe_message
from activities.gateways.base import Gateway, GatewayError
from activities.gateways.registry import GatewayRegistry
from activities.reopen import Reopener
from activities.store.repository import PaymentStore
from workflows import activity_names as names
from workflows.client import PaymentNotRunning, PaymentWorkflows
from workflows.domain import PaymentStatus, PaymentView, RefundStatus, RefundView
from workflows.gateway_io import (
    GatewayEvent,
    GatewayEventKind,
    GatewayPaymentStatus,
    GatewayResult,
    LookupCall,
    RefundLookupCall,
    RefundResult,
)
from workflows.reconcile_io import Drift, DriftKind, ReconcileReport, ReconcileRequest, RepairAction

log = logging.getLogger("durapay.reconcile")

_OPEN = frozenset({PaymentStatus.PENDING, PaymentStatus.AUTHORIZING, PaymentStatus.OUTCOME_UNKNOWN})
_SETTLED = frozenset(
    {PaymentStatus.PAID, PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED, PaymentStatus.DISPUTED}
)

G = GatewayPaymentStatus


class PaymentSignals(Protocol):
    async def gateway_event(self, payment_id: str, event: GatewayEvent) -> bool:
        """Hand `event` to the payment's workflow; False when it has no open workflow."""
        ...


class TemporalPaymentSignals:
    """`PaymentSignals` over a Temporal client. With `reopener`, a payment whose workflow has
    closed takes the event in a run started from the stored payment (activities/reopen.py)
    instead of being left as it is."""

    def __init__(self, client: Client, reopener: Reopener | None = None) -> None:
        self._workflows = PaymentWorkflows(client)
        self._reopener = reopener

    async def gateway_event(self, payment_id: str, event: GatewayEvent) -> bool:
        try:
            await self._workflows.gateway_event(payment_id, event)
        except PaymentNotRunning:  # closed after its window
            return self._reopener is not None and await self._reopener.signal(payment_id, event) is not None
        return True


@dataclass(frozen=True)
class Finding:
    """How our status and the provider's differ, and the event (if any) that tells the workflow."""

    kind: DriftKind
    detail: str
    repair: GatewayEventKind | None = None


def classify(view: PaymentView, result: GatewayResult) -> Finding | None:
    """Compare our view with the provider's answer to a lookup; None when they agree (or differ
    only in a way the workflow is already resolving by itself)."""
    ours, theirs = view.status, result.status
    if ours in _OPEN:
        repairs = {
            G.SUCCEEDED: (GatewayEventKind.PAYMENT_SUCCEEDED, "paid at the provider"),
            G.AUTHORIZED: (GatewayEventKind.PAYMENT_AUTHORIZED, "authorized at the provider"),
            G.DECLINED: (GatewayEventKind.PAYMENT_FAILED, "declined at the provider"),
            G.CANCELLED: (GatewayEventKind.PAYMENT_CANCELLED, "cancelled at the provider"),
        }
        if theirs in repairs:
            kind, detail = repairs[theirs]
            return Finding(DriftKind.STATUS, detail, kind)
        if theirs is G.NOT_FOUND and ours is PaymentStatus.AUTHORIZING:
            return Finding(
                DriftKind.CONTRADICTION, "waiting for the customer, but the provider has no such payment"
            )
        # Pending / outcome unknown with the provider still working, or not reached yet: the
        # workflow is asking the provider itself.
        return None
    if ours is PaymentStatus.AUTHORIZED:
        if theirs is G.AUTHORIZED:
            return None
        if theirs is G.SUCCEEDED:
            return Finding(DriftKind.STATUS, "captured at the provider", GatewayEventKind.PAYMENT_SUCCEEDED)
        if theirs is G.CANCELLED:
            return Finding(
                DriftKind.STATUS,
                "the authorization was voided at the provider",
                GatewayEventKind.PAYMENT_CANCELLED,
            )
        return Finding(DriftKind.CONTRADICTION, f"authorized here, {theirs.value} at the provider")
    if ours in _SETTLED:
        if theirs is not G.SUCCEEDED:
            return Finding(DriftKind.CONTRADICTION, f"{ours.value} here, {theirs.value} at the provider")
        if result.captured_minor is not None and result.captured_minor != view.captured_minor:
            return Finding(
                DriftKind.AMOUNT,
                f"captured {view.amount.with_minor(view.captured_minor)} here, "
                f"{view.amount.with_minor(result.captured_minor)} at the provider",
            )
        return None
    # failed or cancelled here
    if theirs in (G.DECLINED, G.CANCELLED, G.NOT_FOUND):
        return None
    if theirs is G.SUCCEEDED:
        if view.captured_minor and any(r.status is not RefundStatus.FAILED for r in view.refunds):
            return None  # the late payment is already recorded and being given back
        return Finding(
            DriftKind.STATUS,
            "paid at the provider after the payment was given up: the workflow refunds it",
            GatewayEventKind.PAYMENT_SUCCEEDED,
        )
    if theirs is G.AUTHORIZED:
        return Finding(
            DriftKind.CONTRADICTION, f"{ours.value} here, but funds are held at the provider: void them there"
        )
    return Finding(DriftKind.CONTRADICTION, f"{ours.value} here, still {theirs.value} at the provider")


def status_event(view: PaymentView, result: GatewayResult, kind: GatewayEventKind) -> GatewayEvent:
    """The provider's view as an event the workflow applies by its usual rules."""
    moved = result.captured_minor if kind is GatewayEventKind.PAYMENT_SUCCEEDED else result.authorized_minor
    return GatewayEvent(
        gateway=view.gateway,
        event_id=f"reconcile:{view.id}:{result.status.value}",
        kind=kind,
        provider_type=f"reconcile.{result.status.value}",
        payment_id=view.id,
        provider_payment_id=result.provider_payment_id or view.provider_payment_id,
        # The amount the provider reports, so the workflow can refuse one it did not ask for.
        amount=view.amount.with_minor(moved) if moved else None,
        failure=result.failure,
    )


def refund_event(view: PaymentView, refund: RefundView, result: RefundResult) -> GatewayEvent:
    succeeded = result.status is RefundStatus.SUCCEEDED
    return GatewayEvent(
        gateway=view.gateway,
        event_id=f"reconcile:{view.id}:refund:{refund.refund_id}:{result.status.value}",
        kind=GatewayEventKind.REFUND_SUCCEEDED if succeeded else GatewayEventKind.REFUND_FAILED,
        provider_type=f"reconcile.refund_{result.status.value}",
        payment_id=view.id,
        provider_payment_id=view.provider_payment_id,
        amount=refund.amount,
        refund_id=refund.refund_id,
        provider_refund_id=result.provider_refund_id or refund.provider_refund_id,
        failure=result.failure,
    )


@dataclass
class _Checked:
    skipped: bool = False
    drifts: list[Drift] = field(default_factory=list)


class Reconciler:
    """Compares payments with their gateways. Lookups only read; `signals` is needed to repair."""

    def __init__(
        self,
        store: PaymentStore,
        registry: GatewayRegistry,
        signals: PaymentSignals | None = None,
        *,
        page_size: int = 200,
        concurrency: int = 4,
    ) -> None:
        if page_size <= 0 or concurrency <= 0:
            raise ValueError("page_size and concurrency must be positive")
        self._store = store
        self._registry = registry
        self._signals = signals
        self._page_size = page_size
        # Bounded: a reconciliation run must not use up the provider's rate limit for payments.
        self._concurrency = concurrency

    async def run(
        self,
        request: ReconcileRequest,
        *,
        now: datetime | None = None,
        progress: Callable[[ReconcileReport], None] | None = None,
    ) -> ReconcileReport:
        if request.repair and self._signals is None:
            raise ValueError("repairing needs PaymentSignals to reach the workflows")
        report = ReconcileReport(since=request.since, until=request.until, repair=request.repair)
        in_flight_after = (now or datetime.now(UTC)) - timedelta(seconds=request.grace_seconds)
        slots = asyncio.Semaphore(self._concurrency)

        async def check(view: PaymentView) -> _Checked:
            async with slots:
                return await self._check(view, in_flight_after, request.repair)

        async for page in self._pages(request.since, request.until):
            for checked in await asyncio.gather(*(check(view) for view in page)):
                if checked.skipped:
                    report.skipped_recent += 1
                    continue
                report.checked += 1
                if not checked.drifts:
                    report.consistent += 1
                for drift in checked.drifts:
                    if len(report.drifts) < request.max_listed:
                        report.drifts.append(drift)
                    else:
                        report.unlisted_drifts += 1
                        report.unlisted_signalled += drift.action is RepairAction.SIGNALLED
            if progress is not None:
                progress(report)
        return report

    async def _pages(self, since: datetime, until: datetime) -> AsyncIterator[list[PaymentView]]:
        """Payments created in [since, until), oldest first, a page at a time. The store pages by
        time only, so the next page starts at the last creation time seen, minus the ids already
        walked at that instant."""
        cursor = since
        seen: set[str] = set()
        while True:
            limit = self._page_size + len(seen)  # always room for new rows past the seen ones
            rows = await self._store.list_payments(since=cursor, until=until, limit=limit)
            page = [view for view in rows if view.id not in seen]
            if page:
                yield page
            if len(rows) < limit:
                return
            last = rows[-1].created_at
            if last != cursor:
                seen = set()
            cursor = last
            seen |= {view.id for view in rows if view.created_at == last}

    async def _check(self, view: PaymentView, in_flight_after: datetime, repair: bool) -> _Checked:
        if view.updated_at > in_flight_after:
            return _Checked(skipped=True)
        checked = _Checked()
        try:
            gateway = self._registry.get(view.gateway)
            result = await gateway.lookup(
                LookupCall(
                    gateway=view.gateway,
                    payment_id=view.id,
                    provider_payment_id=view.provider_payment_id,
                    amount=view.amount,
                    capture_method=view.capture_method,
                    method=view.method,
                )
            )
        except GatewayError as exc:
            checked.drifts.append(
                _drift(view, None, DriftKind.LOOKUP_FAILED, f"{exc.code}: {safe_message(exc.message)}")
            )
            return checked
        finding = classify(view, result)
        if finding is not None:
            drift = _drift(view, result.status.value, finding.kind, finding.detail)
            if finding.repair is not None:
                event = status_event(view, result, finding.repair)
                drift = await self._repair(drift, event, repair)
            checked.drifts.append(drift)
        for refund in (r for r in view.refunds if r.status is RefundStatus.PENDING):
            refund_drift = await self._check_refund(gateway, view, refund, repair)
            if refund_drift is not None:
                checked.drifts.append(refund_drift)
        for drift in checked.drifts:
            log.warning(
                "drift %s (%s): %s here, %s at %s: %s -> %s",
                view.id,
                drift.kind.value,
                view.status.value,
                drift.theirs,
                view.gateway,
                drift.detail,
                drift.action.value,
            )
        return checked

    async def _check_refund(
        self, gateway: Gateway, view: PaymentView, refund: RefundView, repair: bool
    ) -> Drift | None:
        try:
            result = await gateway.lookup_refund(
                RefundLookupCall(
                    gateway=view.gateway,
                    payment_id=view.id,
                    provider_payment_id=view.provider_payment_id,
                    refund_id=refund.refund_id,
                    provider_refund_id=refund.provider_refund_id,
                )
            )
        except GatewayError as exc:
            return _drift(
                view,
                None,
                DriftKind.LOOKUP_FAILED,
                f"refund {refund.refund_id}: {exc.code}: {safe_message(exc.message)}",
            )
        if result.status is RefundStatus.PENDING:
            return None
        drift = _drift(
            view,
            result.status.value,
            DriftKind.REFUND,
            f"refund {refund.refund_id} of {refund.amount} is pending here, {result.status.value} at the provider",
        )
        return await self._repair(drift, refund_event(view, refund, result), repair)

    async def _repair(self, drift: Drift, event: GatewayEvent, repair: bool) -> Drift:
        drift = drift.model_copy(update={"repair": event.kind, "event_id": event.event_id})
        if not repair:
            return drift
        assert self._signals is not None  # run() refuses to repair without them
        taken = await self._signals.gateway_event(drift.payment_id, event)
        return drift.model_copy(
            update={"action": RepairAction.SIGNALLED if taken else RepairAction.WORKFLOW_CLOSED}
        )


def _drift(view: PaymentView, theirs: str | None, kind: DriftKind, detail: str) -> Drift:
    return Drift(
        payment_id=view.id,
        order_id=view.order_id,
        gateway=view.gateway,
        ours=view.status,
        theirs=theirs,
        kind=kind,
        detail=detail,
    )


class ReconciliationActivities:
    """`ReconciliationActivities(store, registry, client).definitions()` is what the worker registers."""

    def __init__(
        self, store: PaymentStore, registry: GatewayRegistry, client: Client, reopener: Reopener | None = None
    ) -> None:
        self._reconciler = Reconciler(store, registry, TemporalPaymentSignals(client, reopener))

    @activity.defn(name=names.RECONCILE)
    async def reconcile(self, request: ReconcileRequest) -> ReconcileReport:
        # A heartbeat per page: a worker that died mid-walk is noticed within the heartbeat timeout.
        return await self._reconciler.run(request, progress=lambda report: activity.heartbeat(report.checked))

    def definitions(self) -> list[Callable[..., object]]:
        return [self.reconcile]
