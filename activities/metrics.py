"""Gateway call metrics of one worker process (prometheus-client), where Temporal's own metrics do not
reach: Temporal sees an activity succeed or fail, not which provider answered what.

| metric | labels |
|---|---|
| `durapay_gateway_calls_total` | `gateway`, `operation`, `outcome` (`GatewayOutcome`) |
| `durapay_gateway_call_duration_seconds` (histogram) | `gateway`, `operation` |

Labels are configured gateway ids, the six operations and the outcomes below: never payment ids,
amounts or anything a caller chose, so the number of series stays fixed. Each `GatewayMetrics` owns a
`CollectorRegistry`, so several workers in one process (tests, `durapay dev`) never share counts;
`workers/` serves it over HTTP.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram

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
    def __init__(self, health: OutcomeListener | None = None) -> None:
        """`health` also hears every outcome: the routing circuits (activities/routing/health.py)."""
        self.health = health
        self.registry = CollectorRegistry()
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
