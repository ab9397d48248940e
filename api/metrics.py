"""Prometheus metrics of one API app (prometheus-client), served at `GET /metrics` when
`ApiDeps.serve_metrics` is on. Temporal's metrics see workflows and RPCs, not what callers were told.

| metric | labels |
|---|---|
| `durapay_api_requests_total` | `method`, `route` (template: `/v1/payments/{payment_id}`, or `unmatched`), `status` |
| `durapay_api_request_duration_seconds` (histogram) | `method`, `route` |
| `durapay_webhooks_total` | `gateway`, `outcome`: `signalled`, `unknown_payment`, `rejected`, or `duplicate` (a verified event already received: signalled again, applied once by the workflow) |
| `durapay_payment_decisions_total` | `status`: the payment's status in each answer of `POST /v1/payments` (402 `failed`, a 409 order refusal `failed` too). A retry under the same Idempotency-Key is answered, and counted, again |
| `durapay_payment_attempt_refusals_total` | `limit`: `order`, `customer` or `ip` (429 `payment_attempts_exceeded`) |

Labels are route templates, enum values and configured gateway ids, never ids, amounts or anything a
caller typed (an unknown method is `OTHER`, an unknown path `unmatched`), so the number of series is
fixed. Each `ApiMetrics` owns its `CollectorRegistry`: two apps in one process count apart.
"""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import choose_encoder

from api.payments import ORDER_REFUSALS, create_payment
from api.ports import WebhookInbox
from api.problems import PROBLEM_CONTENT_TYPE
from workflows.domain import PaymentStatus
from workflows.webhook_inbox import WebhookOutcome

METRICS_PATH = "/metrics"
UNMATCHED = "unmatched"
DUPLICATE = "duplicate"
ATTEMPTS_EXCEEDED = "payment_attempts_exceeded"  # the problem code of api.payments.limit_attempts
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Up to the longest an answer may take: POST /v1/payments waits up to decide_timeout (30 s).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._requests = Counter(
            "durapay_api_requests",
            "HTTP requests answered, by method, route template and status",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self._duration = Histogram(
            "durapay_api_request_duration_seconds",
            "Time to answer, by method and route template",
            ("method", "route"),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._webhooks = Counter(
            "durapay_webhooks",
            "Webhook deliveries by gateway and outcome (per event; a rejected delivery counts once)",
            ("gateway", "outcome"),
            registry=self.registry,
        )
        self._decisions = Counter(
            "durapay_payment_decisions",
            "Answers of POST /v1/payments by the payment's status",
            ("status",),
            registry=self.registry,
        )
        self._attempt_refusals = Counter(
            "durapay_payment_attempt_refusals",
            "New payments refused by an attempt limit, by limit",
            ("limit",),
            registry=self.registry,
        )

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Outermost, so that it sees every answer as sent, problems included."""
        started = time.perf_counter()
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # what the problem middleware passes on (redirects)
            self._observe(request, exc.status, started)
            raise
        self._observe(request, response.status, started)
        if request.match_info.handler is create_payment:
            self._observe_create(response)
        return response

    async def expose(self, request: web.Request) -> web.Response:
        """`GET /metrics`, in the exposition format the scraper asks for."""
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        return web.Response(body=encoder(self.registry), headers={"Content-Type": content_type})

    def counting(self, inbox: WebhookInbox) -> WebhookInbox:
        """`inbox`, counting every delivery the receiver records: each outcome it records, and as
        `duplicate` a verified event the inbox already held."""
        return _CountingInbox(inbox, self._webhooks)

    def _observe(self, request: web.Request, status: int, started: float) -> None:
        method = request.method if request.method in _METHODS else "OTHER"
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else UNMATCHED
        self._requests.labels(method, route, str(status)).inc()
        self._duration.labels(method, route).observe(time.perf_counter() - started)

    def _observe_create(self, response: web.StreamResponse) -> None:
        # The answer is the one place the API states the decision; read back from the body it
        # sent rather than threaded through the handler.
        if not isinstance(response, web.Response) or not isinstance(response.body, bytes):
            return
        try:
            document = json.loads(response.body)
        except ValueError:
            return
        if response.headers.get("Content-Type") == PROBLEM_CONTENT_TYPE:
            if response.status == 429 and document.get("code") == ATTEMPTS_EXCEEDED:
                self._attempt_refusals.labels(str(document.get("limit", "unknown"))).inc()
            elif response.status == 409 and document.get("code") in ORDER_REFUSALS:
                self._decisions.labels(PaymentStatus.FAILED.value).inc()
        elif response.status < 300 or response.status == 402:
            try:
                status = PaymentStatus(document.get("status"))
            except ValueError:  # not a payment after all: nothing to count, and no reason to fail the answer
                return
            self._decisions.labels(status.value).inc()


class _CountingInbox:
    def __init__(self, inbox: WebhookInbox, counter: Counter) -> None:
        self._inbox = inbox
        self._counter = counter

    async def record(
        self,
        *,
        gateway: str,
        event_id: str,
        payment_id: str | None,
        verified: bool,
        outcome: WebhookOutcome,
        event_type: str,
    ) -> bool:
        first_time = await self._inbox.record(
            gateway=gateway,
            event_id=event_id,
            payment_id=payment_id,
            verified=verified,
            outcome=outcome,
            event_type=event_type,
        )
        # Counted once recorded: a delivery that failed on the way (503) is the provider's to retry,
        # and counts when it gets through.
        self._counter.labels(gateway, outcome.value if first_time else DUPLICATE).inc()
        return first_time
