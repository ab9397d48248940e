"""The screening service as Temporal activities: `fraud.screen` before any money moves, and
`fraud.feedback` after capture or a dispute. Both are regular (not local) activities so that their
retries show in the payment's history; their budgets are in workflows/activity_options.py.

A service that could not answer raises a retryable error; one that refused our request raises a
non-retryable `ScreeningRejected` (retrying cannot help): either way the workflow falls back to the
policy's `on_provider_error` once the activity gives up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.fraud_providers.base import FraudProvider, ScreeningRejected, ScreeningUnavailable
from workflows import activity_names
from workflows.fraud_io import FeedbackCall, ScreeningCall, ScreeningVerdict


@contextmanager
def _activity_errors() -> Iterator[None]:
    try:
        yield
    except ScreeningUnavailable as exc:
        raise ApplicationError(str(exc), type="ScreeningUnavailable") from None
    except ScreeningRejected as exc:
        raise ApplicationError(str(exc), type="ScreeningRejected", non_retryable=True) from None


class FraudScreeningActivities:
    def __init__(self, providers: Mapping[str, FraudProvider]) -> None:
        self._providers = providers

    def _provider(self, name: str) -> FraudProvider:
        provider = self._providers.get(name)
        if provider is None:
            # A payment screened under a configuration this worker does not have.
            raise ApplicationError(
                f"fraud provider {name!r} is not configured on this worker",
                type="ScreeningRejected",
                non_retryable=True,
            )
        return provider

    @activity.defn(name=activity_names.SCREEN_FRAUD)
    async def screen(self, call: ScreeningCall) -> ScreeningVerdict:
        provider = self._provider(call.provider)
        with _activity_errors():
            return await provider.screen(call)

    @activity.defn(name=activity_names.FRAUD_FEEDBACK)
    async def feedback(self, call: FeedbackCall) -> bool:
        """True once sent; False when the service takes no feedback of this kind."""
        provider = self._provider(call.provider)
        if call.kind not in provider.feedback_kinds:
            return False
        with _activity_errors():
            await provider.feedback(call)
        return True

    def definitions(self) -> list[Callable[..., Any]]:
        return [self.screen, self.feedback]
