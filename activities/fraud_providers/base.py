"""The fraud screening port: what every screening service adapter offers the activities.

An adapter turns our `ScreeningCall` into the service's request and its answer into a
`ScreeningVerdict`; it tells the service what became of a payment with `feedback`. Failures come in
two kinds only, because the workflow treats them differently:

- `ScreeningUnavailable`: the service could not answer now (network, 5xx, rate limit, timeout).
  Retried within the activity's short budget, then the policy's `on_provider_error` decides.
- `ScreeningRejected`: the service refused our request (bad credentials, a missing field). Retrying
  cannot help, so the fallback applies at once; the message says what to fix.
"""

from __future__ import annotations

from typing import Protocol

from workflows.domain import FraudDecision
from workflows.fraud_io import FeedbackCall, FeedbackKind, ScreeningCall, ScreeningVerdict


class ScreeningError(Exception):
    def __init__(self, provider: str, message: str) -> None:
        super().__init__(f"{provider}: {message}")
        self.provider = provider


class ScreeningUnavailable(ScreeningError):
    """No usable answer now; asking again later may work."""


class ScreeningRejected(ScreeningError):
    """The service refused the request; the same request will be refused again."""


class FraudProvider(Protocol):
    name: str
    # What `feedback` can tell this service; others are skipped (and recorded as skipped).
    feedback_kinds: frozenset[FeedbackKind]

    async def screen(self, call: ScreeningCall) -> ScreeningVerdict: ...

    async def feedback(self, call: FeedbackCall) -> None: ...

    async def aclose(self) -> None: ...


def verdict_for_score(score: int, review_threshold: int, block_threshold: int) -> FraudDecision:
    """The decision a bare score means, on the same thresholds the rules use."""
    if score >= block_threshold:
        return FraudDecision.BLOCK
    if score >= review_threshold:
        return FraudDecision.REVIEW
    return FraudDecision.ALLOW
