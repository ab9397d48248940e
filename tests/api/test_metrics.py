"""GET /metrics of the API through real HTTP: requests by route template and status with latencies,
webhooks by outcome, payment decisions by status, attempt-limit refusals; labels that never carry
what a caller sent; one registry per app; nothing served unless configured."""

from __future__ import annotations

from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families
from temporalio.service import RPCError, RPCStatusCode

from tests.api.fakes import (
    AUTH,
    CountingRateLimiter,
    FakeStore,
    a_view,
    make_deps,
    serve,
    signed,
)
from workflows.domain import Failure, PaymentStatus
from workflows.gateway_io import GatewayEvent, GatewayEventKind

PAYMENT_ROUTE = "/v1/payments/{payment_id}"
WEBHOOK_ROUTE = "/webhooks/{gateway}"


async def scrape(http: aiohttp.ClientSession, base: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of the exposition, keyed by name and labels."""
    async with http.get(f"{base}/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = await resp.text()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def body(order: str = "o-1", token: str = "tok_visa", **fields: Any) -> dict:
    return {
        "order_id": order,
        "amount": "49.99",
        "currency": "USD",
        "payment_method": {"type": "card", "token": token},
        **fields,
    }


class DecidingTemporal:
    """Decides every payment with the view it is given; signals always land."""

    def __init__(self, view=None) -> None:
        self.view = view

    async def execute_update_with_start_workflow(self, *args: Any, **kwargs: Any):
        return self.view

    def get_workflow_handle(self, workflow_id: str) -> DecidingTemporal:
        return self

    async def signal(self, *args: Any, **kwargs: Any) -> None:
        return None

    async def describe(self) -> None:  # no payment from before merchants (legacy ids)
        raise RPCError("workflow not found", RPCStatusCode.NOT_FOUND, b"")


async def test_metrics_are_off_unless_configured() -> None:
    async with serve(make_deps()) as base, aiohttp.ClientSession() as http:
        async with http.get(f"{base}/metrics") as resp:
            assert resp.status == 404


async def test_requests_by_route_template_and_status_with_latency() -> None:
    payment_id = "pay_" + "b" * 26
    deps = make_deps(serve_metrics=True, store=FakeStore(views={payment_id: a_view(payment_id)}))
    async with serve(deps) as base, aiohttp.ClientSession() as http:
        for _ in range(2):
            async with http.get(f"{base}/healthz") as resp:
                assert resp.status == 200
        async with http.get(f"{base}/v1/payments/{payment_id}", headers=AUTH) as resp:
            assert resp.status == 200
        async with http.get(f"{base}/v1/payments/{payment_id}") as resp:
            assert resp.status == 401
        async with http.get(f"{base}/no/such/path/4242424242424242") as resp:
            assert resp.status == 404
        async with http.request("PROPFIND", f"{base}/healthz") as resp:
            assert resp.status == 405
        samples = await scrape(http, base)
    requests = "durapay_api_requests_total"
    assert value(samples, requests, method="GET", route="/healthz", status="200") == 2
    assert value(samples, requests, method="GET", route=PAYMENT_ROUTE, status="200") == 1
    assert value(samples, requests, method="GET", route=PAYMENT_ROUTE, status="401") == 1
    assert value(samples, requests, method="GET", route="unmatched", status="404") == 1
    assert value(samples, requests, method="OTHER", route="unmatched", status="405") == 1
    assert value(samples, "durapay_api_request_duration_seconds_count", method="GET", route="/healthz") == 2
    assert (
        value(
            samples, "durapay_api_request_duration_seconds_bucket", method="GET", route="/healthz", le="+Inf"
        )
        == 2
    )
    # Route templates, not paths: neither the payment id nor anything else in a path is a label.
    labels = {v for (_, pairs) in samples for _, v in pairs}
    assert not any(payment_id in v or "4242" in v for v in labels)


def _event(event_id: str, **ref: str) -> GatewayEvent:
    return GatewayEvent(
        gateway="mock",
        event_id=event_id,
        kind=GatewayEventKind.PAYMENT_SUCCEEDED,
        provider_type="charge.succeeded",
        **ref,
    )


async def test_webhooks_by_gateway_and_outcome() -> None:
    ours = "pay_" + "c" * 26
    deps = make_deps(client=DecidingTemporal(), serve_metrics=True)
    async with serve(deps) as base, aiohttp.ClientSession() as http:

        async def deliver(events: list[GatewayEvent], forge: bool = False) -> int:
            payload, headers = signed(events)
            if forge:
                payload = payload.replace(b"charge.succeeded", b"charge.refunded")
            async with http.post(f"{base}/webhooks/mock", data=payload, headers=headers) as resp:
                return resp.status

        assert (
            await deliver(
                [_event("evt_1", payment_id=ours), _event("evt_2", provider_payment_id="pi_stranger")]
            )
            == 200
        )
        assert await deliver([_event("evt_1", payment_id=ours)]) == 200  # delivered again by the provider
        assert await deliver([_event("evt_3", payment_id=ours)], forge=True) == 400
        samples = await scrape(http, base)
    webhooks = "durapay_webhooks_total"
    assert value(samples, webhooks, gateway="mock", outcome="signalled") == 1
    assert value(samples, webhooks, gateway="mock", outcome="unknown_payment") == 1
    assert value(samples, webhooks, gateway="mock", outcome="duplicate") == 1
    assert value(samples, webhooks, gateway="mock", outcome="rejected") == 1
    # The receiver still recorded everything in the inbox it was given.
    assert [e.event_id for e in deps.inbox.entries if e.verified] == ["evt_1", "evt_2", "evt_1"]
    assert value(samples, "durapay_api_requests_total", method="POST", route=WEBHOOK_ROUTE, status="400") == 1


async def test_payment_decisions_by_status() -> None:
    order_refusal = a_view(
        status=PaymentStatus.FAILED, failure=Failure(code="order_already_paid", message="paid")
    )
    declined = a_view(status=PaymentStatus.FAILED, failure=Failure(code="card_declined", message="declined"))
    cases = [
        (a_view(), 201),
        (a_view(status=PaymentStatus.AUTHORIZING), 202),
        (declined, 402),
        (order_refusal, 409),
    ]
    temporal = DecidingTemporal()
    async with serve(make_deps(client=temporal, serve_metrics=True)) as base, aiohttp.ClientSession() as http:
        for index, (view, status) in enumerate(cases):
            temporal.view = view
            async with http.post(
                f"{base}/v1/payments", json=body(), headers={**AUTH, "Idempotency-Key": f"k{index}"}
            ) as resp:
                assert resp.status == status
        async with http.post(
            f"{base}/v1/payments", json=body(amount="1.001"), headers={**AUTH, "Idempotency-Key": "bad"}
        ) as resp:
            assert resp.status == 422  # refused before any decision
        samples = await scrape(http, base)
    decisions = "durapay_payment_decisions_total"
    assert value(samples, decisions, status="paid") == 1
    assert value(samples, decisions, status="authorizing") == 1
    assert value(samples, decisions, status="failed") == 2  # declined (402) and refused by the order (409)
    assert sum(v for (name, _), v in samples.items() if name == decisions) == 4


async def test_attempt_limit_refusals_by_limit() -> None:
    limiter = CountingRateLimiter()
    limiter.hits["attempts:customer:default/cus_1"] = 1  # this customer's one attempt of the hour is used up
    deps = make_deps(
        rate_limiter=limiter, store=FakeStore(), limits={"customer_attempts_per_hour": 1}, serve_metrics=True
    )
    async with serve(deps) as base, aiohttp.ClientSession() as http:
        for key in ("k1", "k2"):
            async with http.post(
                f"{base}/v1/payments",
                json=body(customer_id="cus_1"),
                headers={**AUTH, "Idempotency-Key": key},
            ) as resp:
                assert resp.status == 429
        samples = await scrape(http, base)
    assert value(samples, "durapay_payment_attempt_refusals_total", limit="customer") == 2
    assert value(samples, "durapay_payment_decisions_total", status="failed") == 0


async def test_each_app_counts_on_its_own() -> None:
    async with serve(make_deps(serve_metrics=True)) as first, serve(make_deps(serve_metrics=True)) as second:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{first}/healthz") as resp:
                assert resp.status == 200
            in_first, in_second = await scrape(http, first), await scrape(http, second)
    healthz = {"method": "GET", "route": "/healthz", "status": "200"}
    assert value(in_first, "durapay_api_requests_total", **healthz) == 1
    assert value(in_second, "durapay_api_requests_total", **healthz) == 0
