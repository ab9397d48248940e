"""Reconciliation contracts: what our store says against what each payment's gateway says.

The walk is I/O (activities/reconciliation.py); the schedule's workflow is workflows/reconciliation.py.
Drift is repaired only through the payment workflows (a synthetic `GatewayEvent` built from a lookup),
never by writing the store, so every repair obeys the same rules as a webhook: applied once, never
backwards.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field, model_validator

from workflows.domain import Contract, PaymentStatus
from workflows.gateway_io import GatewayEventKind


class DriftKind(StrEnum):
    STATUS = "status"  # the provider is ahead of us (paid, authorized, failed, voided): an event repairs it
    REFUND = "refund"  # a refund we hold as pending is settled at the provider: an event repairs it
    AMOUNT = "amount"  # both say paid, but not the same amount
    CONTRADICTION = "contradiction"  # the provider says what our state cannot move to: a person must look
    LOOKUP_FAILED = "lookup_failed"  # the provider could not be asked; the next run tries again


class RepairAction(StrEnum):
    REPORTED = "reported"  # found, left alone (no --repair, or nothing an event could express)
    SIGNALLED = "signalled"  # the payment's workflow took the synthetic event; its rules decide
    WORKFLOW_CLOSED = "workflow_closed"  # no open workflow to take the event: a person must look


class ReconcileRequest(Contract):
    """Payments created in [since, until) are compared; those updated within `grace_seconds` of
    the run are skipped, being still in flight."""

    since: datetime
    until: datetime
    repair: bool = False
    grace_seconds: int = Field(default=60, ge=0)
    # The report lists at most this many drifts (a payload has a size limit); the rest are counted.
    max_listed: int = Field(default=1000, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> ReconcileRequest:
        if self.since.tzinfo is None or self.until.tzinfo is None:
            raise ValueError("since and until must be timezone-aware")
        if self.since >= self.until:
            raise ValueError("since must be before until")
        return self


class Drift(Contract):
    payment_id: str
    order_id: str
    gateway: str
    ours: PaymentStatus
    theirs: str | None  # the provider's GatewayPaymentStatus / RefundStatus; None when not asked
    kind: DriftKind
    detail: str
    repair: GatewayEventKind | None = None  # the event that expresses the provider's view, if any
    event_id: str | None = None  # its deterministic id: repeated runs never apply it twice
    action: RepairAction = RepairAction.REPORTED

    @property
    def needs_attention(self) -> bool:
        return self.action is not RepairAction.SIGNALLED


class ReconcileReport(Contract):
    since: datetime
    until: datetime
    repair: bool
    checked: int = 0  # compared with their gateway
    skipped_recent: int = 0  # updated within the grace period: still in flight
    consistent: int = 0
    drifts: list[Drift] = Field(default_factory=list)
    unlisted_drifts: int = 0  # found beyond `max_listed`
    unlisted_signalled: int = 0  # of those, repaired through their workflow

    @property
    def needs_attention(self) -> bool:
        unlisted = self.unlisted_drifts > self.unlisted_signalled
        return unlisted or any(drift.needs_attention for drift in self.drifts)


class ReconcileWindow(Contract):
    """What the schedule starts the workflow with: look back `window_seconds` from the run."""

    window_seconds: int = Field(gt=0)
    repair: bool = False
    grace_seconds: int = Field(default=60, ge=0)
