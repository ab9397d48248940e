"""A realistic provider for the durapay scenarios: the real Stripe gateway (the `stripe` SDK and
durapay's adapter) against the fake Stripe server of its gateway plugin, answering every API call
after `--provider-latency-ms` (300 ms by default), as a real provider would.

The fake runs in the bench's own process (its CPU is the load generator's, not durapay's) and
times, from its side, every request it answers: arrival to answer sent, its latency included.
A payment's provider time is the sum over the requests carrying its idempotency keys (every
gateway call has one, `payment-<id>:<operation>...`) that ended before the payment's answer: the
part of its latency durapay cannot remove. "Overhead durapay adds" = answer latency minus that.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web

from activities.gateways.plugins import PLUGINS
from activities.gateways.stripe.fake import FakeStripe
from workers.bench.load import latency_summary
from workflows.client import workflow_id

GATEWAY = "stripe"
SUCCESS_METHOD = "pm_card_visa"  # Stripe's test card that succeeds


class TimedFakeStripe(FakeStripe):
    """The plugin's fake, recording how long each keyed request took to answer, by payment."""

    def reset(self) -> None:
        super().reset()
        # workflow id ("payment-<id>") -> [(monotonic time the answer left, seconds it took)]
        self.timed: dict[str, list[tuple[float, float]]] = defaultdict(list)
        self.unkeyed_requests = 0

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        arrived = time.monotonic()
        try:
            return await super()._middleware(request, handler)
        finally:
            answered = time.monotonic()
            key = request.headers.get("Idempotency-Key")
            if key and ":" in key:
                self.timed[key.split(":", 1)[0]].append((answered, answered - arrived))
            elif not request.path.startswith("/fake/"):
                self.unkeyed_requests += 1

    def provider_seconds(self, workflow_id: str, until: float) -> tuple[float, int]:
        """Time the provider took for one payment's calls that were answered by `until`, and their count."""
        calls = [took for at, took in self.timed.get(workflow_id, []) if at <= until]
        return sum(calls), len(calls)


@asynccontextmanager
async def fake_stripe(latency_ms: float) -> AsyncIterator[TimedFakeStripe]:
    """The fake the Stripe plugin names, started here, slowed down to `latency_ms` per call."""
    assert PLUGINS[GATEWAY].fake == f"{FakeStripe.__module__}:{FakeStripe.__name__}"
    fake = TimedFakeStripe()
    await fake.start()
    try:
        fake.latency = latency_ms / 1000
        yield fake
    finally:
        await fake.stop()


class ProviderTimes:
    """Per payment started in [since, until) (monotonic): its answer latency and the provider's
    share of it."""

    def __init__(self, since: float, until: float) -> None:
        self.since, self.until = since, until
        self.provider_s: list[float] = []
        self.overhead_s: list[float] = []
        self.calls: list[int] = []

    def add(self, fake: TimedFakeStripe, payment_id: str, started: float, answer_s: float) -> None:
        if not self.since <= started < self.until:  # warm-up and history-probe payments are not measured
            return
        provider_s, calls = fake.provider_seconds(workflow_id(payment_id), started + answer_s)
        self.provider_s.append(provider_s)
        self.overhead_s.append(answer_s - provider_s)
        self.calls.append(calls)

    def summary(self, latency_ms: float, unkeyed_requests: int) -> dict[str, Any]:
        count = len(self.calls)
        return {
            "gateway": GATEWAY,
            "latency_ms_per_call": latency_ms,
            "measured_from": "the fake's side: arrival to answer of each call keyed with the payment's id",
            "payments": count,
            "calls_per_payment_before_answer": round(sum(self.calls) / count, 3) if count else None,
            "provider_ms": latency_summary(self.provider_s),
            "overhead_ms": latency_summary(self.overhead_s),
            "unkeyed_requests": unkeyed_requests,
        }
