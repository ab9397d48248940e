"""One payment is one trace: with `[telemetry] otlp_endpoint` pointing at an OTLP/HTTP receiver this
test runs (the real exporter, protobuf over HTTP), a card payment through the HTTP API, a real
worker on the dev server and the fake Stripe (real HTTP) is exported as spans that all share the
API request's trace id and form one tree: API request -> update-with-start -> workflow ->
activities -> gateway HTTP calls; the activities' JSON log lines carry the same trace id. Without
the key, nothing is installed."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.testing import WorkflowEnvironment

from activities.gateways.stripe.fake import FakeStripe
from tests.stack import Stack, running_stack, stack
from workers.logging_setup import log_handler

# The stripe SDK's httpx client passes bytes as data=: its warning, not ours.
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")


@dataclass(frozen=True)
class Span:
    trace_id: str
    span_id: str
    parent_id: str
    name: str
    service: str
    attributes: dict[str, str]


class OtlpReceiver:
    """`POST /v1/traces` as an OpenTelemetry collector takes it (application/x-protobuf)."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _traces(self, request: web.Request) -> web.Response:
        assert request.content_type == "application/x-protobuf"
        export = ExportTraceServiceRequest.FromString(await request.read())
        for resource_spans in export.resource_spans:
            service = next(
                a.value.string_value for a in resource_spans.resource.attributes if a.key == "service.name"
            )
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans.append(
                        Span(
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                            name=span.name,
                            service=service,
                            attributes={a.key: str(a.value) for a in span.attributes},
                        )
                    )
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(), content_type="application/x-protobuf"
        )

    async def __aenter__(self) -> OtlpReceiver:
        app = web.Application()
        app.router.add_post("/v1/traces", self._traces)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


@pytest_asyncio.fixture
async def fake_stripe() -> AsyncIterator[FakeStripe]:
    async with FakeStripe() as fake:
        yield fake


async def test_one_payment_is_one_connected_trace(
    temporal_env: WorkflowEnvironment,
    fake_stripe: FakeStripe,
    task_queue: str,
    sqlite_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    log = io.StringIO()
    handler = log_handler("json", log)
    logging.getLogger().addHandler(handler)
    async with OtlpReceiver() as receiver:
        async with running_stack(
            temporal_env.client,
            task_queue=task_queue,
            db_url=sqlite_url,
            config_overrides={
                "payment": {"stripe": fake_stripe.gateway_section()},
                "telemetry": {"otlp_endpoint": receiver.url, "service_name": "durapay-test"},
            },
        ) as stack:
            # aiohttp's client, not httpx's: httpx is instrumented process-wide while tracing is
            # on, and would make the test's request the root. A merchant's traceparent is
            # continued the same way.
            async with aiohttp.ClientSession() as http:
                async with http.post(
                    f"{stack.base_url}/v1/payments",
                    json={
                        "order_id": f"order-{uuid.uuid4().hex[:8]}",
                        "amount": "12.34",
                        "currency": "USD",
                        "gateway": "stripe",
                        "payment_method": {"type": "card", "token": "pm_card_visa"},
                    },
                    headers=stack.headers(uuid.uuid4().hex),
                ) as created:
                    assert created.status == 201, await created.text()
                    payment = await created.json()
                    assert payment["status"] == "paid"
        # Leaving the stack shut the tracer provider down: every span is exported by now.
    logging.getLogger().removeHandler(handler)

    roots = [s for s in receiver.spans if s.name == "POST /v1/payments" and not s.parent_id]
    assert len(roots) == 1, [s.name for s in receiver.spans]
    trace = [s for s in receiver.spans if s.trace_id == roots[0].trace_id]
    names = [s.name for s in trace]
    by_id = {s.span_id: s for s in trace}
    # One tree: every span but the API's own has its parent in the same trace.
    orphans = [s.name for s in trace if s.parent_id and s.parent_id not in by_id]
    assert orphans == []
    assert [s.name for s in trace if not s.parent_id] == ["POST /v1/payments"]
    assert {s.service for s in trace} == {"durapay-test"}

    def ancestors(span: Span) -> list[str]:
        chain = []
        while span.parent_id:
            span = by_id[span.parent_id]
            chain.append(span.name)
        return chain

    update_with_start = [s for s in trace if s.name == "StartUpdateWithStartWorkflow:PaymentWorkflow"]
    assert len(update_with_start) == 1, names
    assert ancestors(update_with_start[0]) == ["POST /v1/payments"]
    # The workflow's spans hang off the context the client sent with update-with-start.
    for name in ("RunWorkflow:PaymentWorkflow", "HandleUpdate:decide"):
        workflow_spans = [s for s in trace if s.name == name]
        assert len(workflow_spans) == 1, names
        assert ancestors(workflow_spans[0])[-2:] == [update_with_start[0].name, "POST /v1/payments"]
    activities = {s.name.removeprefix("RunActivity:"): s for s in trace if s.name.startswith("RunActivity:")}
    assert {"fraud.check", "gateway.authorize", "store.record_transition"} <= set(activities), names
    for activity, span in activities.items():
        assert ancestors(span)[0] == f"StartActivity:{activity}"  # scheduled by the workflow
        assert ancestors(span)[-2:] == [update_with_start[0].name, "POST /v1/payments"]
    # The gateway's HTTP calls to (fake) Stripe, inside the activities that made them.
    stripe_calls = [s for s in trace if fake_stripe.url.split("//")[1] in str(s.attributes)]
    assert stripe_calls, names
    for call in stripe_calls:
        assert ancestors(call)[0] == "RunActivity:gateway.authorize", ancestors(call)
    # The JSON log lines of the payment's activities carry the trace's id: every line logged
    # inside an activity, that is: the SDK's own lines around it (starting, completing) fall
    # outside the activity's span.
    entries = [json.loads(line) for line in log.getvalue().splitlines()]
    in_activities = [
        e
        for e in entries
        if e["payment_id"] == payment["id"]
        and e["workflow_id"] is not None
        and not e["message"].startswith("Starting activity")
        and e["logger"] != "temporalio.worker._activity"
    ]
    assert {e["logger"] for e in in_activities} >= {"httpx", "stripe"}
    assert {e["trace_id"] for e in in_activities} == {roots[0].trace_id}
    print(f"{len(trace)} spans in one trace: {sorted(set(names))}")


async def test_no_tracing_without_an_endpoint(stack: Stack) -> None:
    """Off by default: no interceptor on the client (so histories are what they always were)."""
    assert stack.config.telemetry.otlp_endpoint is None
    assert not any(isinstance(i, TracingInterceptor) for i in stack.client.config()["interceptors"])
