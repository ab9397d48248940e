"""The gateway activities, and the one place a gateway error becomes Temporal retry behaviour.

| adapter raises | activity fails with `ApplicationError` | Temporal |
|---|---|---|
| `GatewayInvalidRequest`, `GatewayConfigError`, `NotSupported` | `type` = that class name, `non_retryable` | final; the workflow records the refusal |
| `GatewayRateLimited(retry_after)` | `type="GatewayRateLimited"`, `next_retry_delay=retry_after` | retried when the provider asked |
| `GatewayOutcomeUnknown`, `GatewayTransientError` | `type` = that class name | retried (same idempotency key) by the workflow's retry policy |

An adapter's own subclass is reported under the name of the base class above it, so the workflow only
ever sees these names; any other `GatewayError` is retried, the safe default for a call that repeats
under the same idempotency key. The `ApplicationError` carries the error's stable `code` as its only
detail; its message is the adapter's safe message, with anything shaped like a card number masked.
Exceptions that are not gateway errors (bugs) propagate unchanged and are retried by Temporal.

Every call is also counted, with its latency, in `activities.metrics.GatewayMetrics` when one is given:
the outcome follows the same table (non-retryable: `invalid`; `GatewayOutcomeUnknown`: `unknown`;
other gateway errors: `transient`), and an answer of `declined` (or a failed refund) is `declined`.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.gateways.base import (
    Gateway,
    GatewayConfigError,
    GatewayError,
    GatewayInvalidRequest,
    GatewayOutcomeUnknown,
    GatewayRateLimited,
    GatewayTransientError,
    NotSupported,
)
from activities.gateways.registry import GatewayRegistry
from activities.metrics import GatewayMetrics, GatewayOutcome
from workflows import activity_names as names
from workflows.domain import RefundStatus
from workflows.gateway_io import (
    AuthorizeCall,
    CancelCall,
    CaptureCall,
    GatewayPaymentStatus,
    GatewayResult,
    LookupCall,
    RefundCall,
    RefundLookupCall,
    RefundResult,
)

T = TypeVar("T")

# Most specific first: (error class, retryable). The class name is the ApplicationError type.
_ERROR_TYPES: tuple[tuple[type[GatewayError], bool], ...] = (
    (GatewayOutcomeUnknown, True),
    (GatewayRateLimited, True),
    (GatewayTransientError, True),
    (GatewayInvalidRequest, False),
    (GatewayConfigError, False),
    (NotSupported, False),
)

MAX_MESSAGE = 300
HEARTBEAT_EVERY_S = 2.0  # well inside the workflow's heartbeat timeout for gateway calls
# 13-19 digits, optionally grouped by spaces or dashes: the shape of a card number (PAN). Longer
# digit runs (e.g. WeChat's 28-digit transaction ids) do not match.
_PAN_LIKE = re.compile(r"\b(?:\d[ -]?){12,18}\d\b")


class GatewayActivities:
    """`GatewayActivities(registry).definitions()` is what the worker registers."""

    def __init__(self, registry: GatewayRegistry, metrics: GatewayMetrics | None = None) -> None:
        self._registry = registry
        self._metrics = metrics

    @activity.defn(name=names.AUTHORIZE)
    async def authorize(self, call: AuthorizeCall) -> GatewayResult:
        return await self._call(call.gateway, "authorize", lambda gateway: gateway.authorize(call))

    @activity.defn(name=names.CAPTURE)
    async def capture(self, call: CaptureCall) -> GatewayResult:
        return await self._call(call.gateway, "capture", lambda gateway: gateway.capture(call))

    @activity.defn(name=names.CANCEL)
    async def cancel(self, call: CancelCall) -> GatewayResult:
        return await self._call(call.gateway, "cancel", lambda gateway: gateway.cancel(call))

    @activity.defn(name=names.LOOKUP)
    async def lookup(self, call: LookupCall) -> GatewayResult:
        return await self._call(call.gateway, "lookup", lambda gateway: gateway.lookup(call))

    @activity.defn(name=names.REFUND)
    async def refund(self, call: RefundCall) -> RefundResult:
        return await self._call(call.gateway, "refund", lambda gateway: gateway.refund(call))

    @activity.defn(name=names.LOOKUP_REFUND)
    async def lookup_refund(self, call: RefundLookupCall) -> RefundResult:
        return await self._call(call.gateway, "lookup_refund", lambda gateway: gateway.lookup_refund(call))

    def definitions(self) -> list[Callable[..., Awaitable[object]]]:
        return [self.authorize, self.capture, self.cancel, self.lookup, self.refund, self.lookup_refund]

    async def _call(self, gateway_id: str, operation: str, run: Callable[[Gateway], Awaitable[T]]) -> T:
        started = time.perf_counter()
        # Heartbeat while the provider thinks, so that a worker that dies mid-call is noticed within
        # the workflow's heartbeat timeout rather than the whole call timeout.
        beating = asyncio.create_task(_heartbeat_until_cancelled())
        try:
            result = await run(self._registry.get(gateway_id))
        except GatewayError as exc:
            error = to_application_error(exc)
            self._observe(gateway_id, operation, error_outcome(error), started)
            activity.logger.warning(
                "%s %s failed: %s (%s)%s",
                gateway_id,
                operation,
                error.type,
                exc.code,
                "" if error.non_retryable else ", will retry",
            )
            # `from None`: the cause chain (HTTP client errors) would be serialized into the
            # workflow history next to the message we vetted.
            raise error from None
        except Exception:
            self._observe(gateway_id, operation, GatewayOutcome.ERROR, started)
            raise
        finally:
            beating.cancel()
        self._observe(gateway_id, operation, result_outcome(result), started)
        return result

    def _observe(self, gateway_id: str, operation: str, outcome: GatewayOutcome, started: float) -> None:
        if self._metrics is not None:
            self._metrics.observe(gateway_id, operation, outcome, time.perf_counter() - started)


def result_outcome(result: object) -> GatewayOutcome:
    """A provider's answer: `declined` when it said no, else `ok`."""
    if isinstance(result, GatewayResult) and result.status is GatewayPaymentStatus.DECLINED:
        return GatewayOutcome.DECLINED
    if isinstance(result, RefundResult) and result.status is RefundStatus.FAILED:
        return GatewayOutcome.DECLINED
    return GatewayOutcome.OK


def error_outcome(error: ApplicationError) -> GatewayOutcome:
    """A gateway error, by what `to_application_error` made of it."""
    if error.non_retryable:
        return GatewayOutcome.INVALID
    if error.type == GatewayOutcomeUnknown.__name__:
        return GatewayOutcome.UNKNOWN
    return GatewayOutcome.TRANSIENT


def to_application_error(exc: GatewayError) -> ApplicationError:
    error_class, retryable = next(
        ((cls, retryable) for cls, retryable in _ERROR_TYPES if isinstance(exc, cls)), (GatewayError, True)
    )
    delay = None
    if isinstance(exc, GatewayRateLimited) and exc.retry_after is not None:
        delay = timedelta(seconds=exc.retry_after)
    return ApplicationError(
        safe_message(exc.message),
        exc.code,
        type=error_class.__name__,
        non_retryable=not retryable,
        next_retry_delay=delay,
    )


def safe_message(message: str) -> str:
    masked = _PAN_LIKE.sub("[redacted]", message)
    return masked if len(masked) <= MAX_MESSAGE else masked[: MAX_MESSAGE - 1] + "…"


async def _heartbeat_until_cancelled() -> None:
    while True:
        activity.heartbeat()
        await asyncio.sleep(HEARTBEAT_EVERY_S)
