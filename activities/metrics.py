"""Metrics of one worker process (prometheus-client), where Temporal's own metrics do not reach:
Temporal sees an activity succeed or fail, not which provider answered what, nor what became of a
payment.

Gateway calls (`GatewayMetrics`, counted by activities/gateway_activities.py):

| metric | labels |
|---|---|
| `durapay_gateway_calls_total` | `gateway`, `operation`, `outcome` (`GatewayOutcome`) |
| `durapay_gateway_call_duration_seconds` (histogram) | `gateway`, `operation` |

Payments (`PaymentMetrics`, counted by the `store.record_transition` local activity from the events of
each transition it stores for the first time, so a retried transition counts once, and a replayed
workflow not at all: its local activity results come from history):

| metric | labels |
|---|---|
| `durapay_payments_total` | `gateway`, `outcome`: `paid`, `failed`, `cancelled` (a payment's end; a failed payment whose money arrives later stays `failed`) |
| `durapay_payment_processing_seconds` (histogram) | `gateway`, `outcome`: from creation to that end, in workflow time |
| `durapay_payment_failures_total` | `gateway`, `reason`: the failure code when it is one of `FAILURE_REASONS`, else `provider_decline` (the provider gave a decline code) or `other` |
| `durapay_refunds_total` | `gateway`, `status`: `succeeded` or `failed` (a refund's end) |
| `durapay_dispute_updates_total` | `gateway`, `state`: `won`, `lost`, or `open` (opened, or any other word of the provider's) |
| `durapay_payments_waiting` (gauge) | `status` in `WAITING_STATUSES`: payments in that status now, from the store |
| `durapay_payments_waiting_oldest_seconds` (gauge) | `status`: how long the longest-waiting of them has not moved (0: none) |
| `durapay_payments_waiting_refreshed_timestamp_seconds` (gauge) | when the two above were last read (a stale value means the store is unreachable) |

The gauges are read from the store every `WAITING_REFRESH_SECONDS` by every worker process serving
metrics: they describe the whole database, so alerts take `max` over the workers, never `sum`.

Labels are configured gateway ids, fixed operations, outcomes, reasons and statuses: never payment
ids, amounts or anything a caller chose, so the number of series stays fixed. Each metrics object
registers in a `CollectorRegistry` of its own unless given one (the worker gives both the same), so
several workers in one process (tests, `durapay dev`) never share counts; `workers/` serves it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from activities.store.repository import PaymentStore
from workflows.domain import Failure, PaymentStatus, PaymentView
from workflows.ledger_io import PaymentTransition

log = logging.getLogger(__name__)

# Provider calls take from tens of milliseconds to the HTTP client's timeout (tens of seconds).
LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class GatewayOutcome(StrEnum):
    OK = "ok"  # the provider answered (including "requires action" and "processing")
    DECLINED = "declined"  # it answered no: a declined payment, a failed refund
    TRANSIENT = "transient"  # unavailable or rate limited: retried
    UNKNOWN = "unknown"  # sent, answer lost: retried under the same idempotency key
    INVALID = "invalid"  # refused the request or not supported: final
    ERROR = "error"  # not a gateway answer at all (a bug): Temporal retries the activity


class OutcomeListener(Protocol):
    def record(self, gateway: str, outcome: GatewayOutcome) -> None: ...


class GatewayMetrics:
    def __init__(
        self, registry: CollectorRegistry | None = None, *, health: OutcomeListener | None = None
    ) -> None:
        """`health` also hears every outcome: the routing circuits (activities/routing/health.py)."""
        self.health = health
        self.registry = registry if registry is not None else CollectorRegistry()
        self._calls = Counter(
            "durapay_gateway_calls",
            "Gateway calls by gateway, operation and outcome",
            ("gateway", "operation", "outcome"),
            registry=self.registry,
        )
        self._duration = Histogram(
            "durapay_gateway_call_duration_seconds",
            "Gateway call latency, whatever the outcome",
            ("gateway", "operation"),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def observe(self, gateway: str, operation: str, outcome: GatewayOutcome, seconds: float) -> None:
        self._calls.labels(gateway, operation, outcome.value).inc()
        self._duration.labels(gateway, operation).observe(seconds)
        if self.health is not None:
            self.health.record(gateway, outcome)


# From a payment's creation to its end: seconds for a card, minutes for 3-D Secure or a QR code,
# up to the authorization TTL (7 days by default) for a manual capture.
PROCESSING_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 86400.0, 604800.0)

# The events of a transition that end a payment, and the outcome each one counts as.
_OUTCOME_EVENTS = {"payment.completed": "paid", "payment.failed": "failed", "payment.cancelled": "cancelled"}
_REFUND_EVENTS = {"refund.succeeded": "succeeded", "refund.failed": "failed"}
_DISPUTE_STATES = {"won": "won", "warning_closed": "won", "lost": "lost"}

# Failure codes durapay itself gives (workflows/, the order ledger, validation, gateway error types)
# and the common ones its gateways map to: a label value only from this fixed set.
FAILURE_REASONS = frozenset(
    {
        "card_declined",
        "declined",
        "payment_failed",
        "authentication_failed",
        "blocked_by_fraud_check",
        "rejected_in_review",
        "review_timeout",
        "action_timeout",
        "authorization_expired",
        "cancelled",
        "not_processed",
        "order_amount_mismatch",
        "order_payment_in_flight",
        "order_already_paid",
        "order_refused",
        "invalid_amount",
        "currency_not_supported",
        "payment_method_not_supported",
        "amount_too_small",
        "amount_too_large",
        "manual_capture_not_supported",
        "gateway_invalid_request",
        "gateway_config_error",
        "not_supported",
    }
)

# Statuses a payment should leave on its own; one that stays is what the alerts look for.
# A payment held for review waits for a person, up to its review deadline (24 h by default).
WAITING_STATUSES = (
    PaymentStatus.PENDING,
    PaymentStatus.AUTHORIZING,
    PaymentStatus.OUTCOME_UNKNOWN,
    PaymentStatus.REQUIRES_REVIEW,
)
WAITING_REFRESH_SECONDS = 30.0


def failure_reason(failure: Failure | None) -> str:
    if failure is not None and failure.code in FAILURE_REASONS:
        return failure.code
    if failure is not None and failure.decline_code:
        return "provider_decline"
    return "other"


class PaymentMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._payments = Counter(
            "durapay_payments",
            "Payments ended, by gateway and outcome",
            ("gateway", "outcome"),
            registry=self.registry,
        )
        self._processing = Histogram(
            "durapay_payment_processing_seconds",
            "From a payment's creation to its end, by gateway and outcome",
            ("gateway", "outcome"),
            buckets=PROCESSING_BUCKETS,
            registry=self.registry,
        )
        self._failures = Counter(
            "durapay_payment_failures",
            "Failed or cancelled payments by gateway and failure reason",
            ("gateway", "reason"),
            registry=self.registry,
        )
        self._refunds = Counter(
            "durapay_refunds",
            "Refunds ended, by gateway and status",
            ("gateway", "status"),
            registry=self.registry,
        )
        self._disputes = Counter(
            "durapay_dispute_updates",
            "Dispute notifications applied, by gateway and state",
            ("gateway", "state"),
            registry=self.registry,
        )
        self._waiting = Gauge(
            "durapay_payments_waiting",
            "Payments in a status they should leave on their own",
            ("status",),
            registry=self.registry,
        )
        self._waiting_oldest = Gauge(
            "durapay_payments_waiting_oldest_seconds",
            "Time since the last transition of the longest-waiting payment in the status (0: none)",
            ("status",),
            registry=self.registry,
        )
        self._waiting_refreshed = Gauge(
            "durapay_payments_waiting_refreshed_timestamp_seconds",
            "When the waiting payments were last counted (Unix time)",
            registry=self.registry,
        )

    def observe(self, transition: PaymentTransition) -> None:
        """Count what `transition` (stored for the first time) ended."""
        view = transition.view
        for event in transition.events:
            if (outcome := _OUTCOME_EVENTS.get(event.type)) is not None:
                self._payments.labels(view.gateway, outcome).inc()
                self._processing.labels(view.gateway, outcome).observe(_age(view))
                if outcome != "paid":
                    self._failures.labels(view.gateway, failure_reason(view.failure)).inc()
            elif (status := _REFUND_EVENTS.get(event.type)) is not None:
                self._refunds.labels(view.gateway, status).inc()
            elif event.type.startswith("dispute."):
                state = _DISPUTE_STATES.get(event.type.removeprefix("dispute."), "open")
                self._disputes.labels(view.gateway, state).inc()

    async def refresh_waiting(self, store: PaymentStore, now: datetime | None = None) -> None:
        now = now or datetime.now(UTC)
        waiting = await store.waiting(WAITING_STATUSES)
        for status in WAITING_STATUSES:
            found = waiting.get(status)
            self._waiting.labels(status.value).set(found.count if found else 0)
            oldest = (now - found.oldest_update).total_seconds() if found else 0.0
            self._waiting_oldest.labels(status.value).set(max(0.0, oldest))
        self._waiting_refreshed.set(time.time())

    @asynccontextmanager
    async def watching_waiting(
        self, store: PaymentStore, every: float = WAITING_REFRESH_SECONDS
    ) -> AsyncIterator[None]:
        """Refresh the waiting gauges from `store` every `every` seconds while the block runs. A
        failed read is logged and retried at the next tick: the refreshed timestamp then goes stale,
        which is what an alert can see."""

        async def loop() -> None:
            while True:
                try:
                    await self.refresh_waiting(store)
                except Exception:  # the store being down must not stop the worker
                    log.warning("cannot count waiting payments", exc_info=True)
                await asyncio.sleep(every)

        task = asyncio.create_task(loop(), name="durapay-waiting-payments")
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def _age(view: PaymentView) -> float:
    return max(0.0, (view.updated_at - view.created_at).total_seconds())
