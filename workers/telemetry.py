"""OpenTelemetry tracing, on when `[telemetry] otlp_endpoint` is set.

One payment is one trace: the API's server span (api/app.py) is the parent of the Temporal client's
update-with-start span; `TracingInterceptor` carries the context in the workflow's headers to the
workflow and activity spans on the worker; the httpx instrumentation adds a span per gateway call
and sends `traceparent` to the provider. Spans go over OTLP/HTTP in batches.

Off (the default) nothing is installed: no interceptor (so the workflow's history is exactly what it
was), no httpx patching, no exporter thread. The provider is durapay's own, not the OpenTelemetry
global one, so a process (or a test session) can start and stop tracing more than once.
"""

from __future__ import annotations

import logging

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import Tracer
from temporalio.client import Client
from temporalio.contrib.opentelemetry import TracingInterceptor

from workers.config import TelemetryConfig

log = logging.getLogger("durapay.telemetry")
TRACES_PATH = "/v1/traces"


class Tracing:
    """A tracer provider exporting to OTLP, and what feeds it: the Temporal interceptor and the
    httpx instrumentation. At most one is active per process (httpx is patched process-wide)."""

    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self.tracer: Tracer = provider.get_tracer("durapay")
        self.interceptor = TracingInterceptor(self.tracer)
        HTTPXClientInstrumentor().instrument(tracer_provider=provider)

    @classmethod
    def start(cls, config: TelemetryConfig, exporter: SpanExporter | None = None) -> Tracing | None:
        """Tracing as configured, or None when `otlp_endpoint` is not set. `exporter`: instead
        of OTLP (tests)."""
        if config.otlp_endpoint is None and exporter is None:
            return None
        if exporter is None:
            endpoint = config.otlp_endpoint or ""
            exporter = OTLPSpanExporter(endpoint=endpoint.rstrip("/") + TRACES_PATH)
        provider = TracerProvider(resource=Resource.create({"service.name": config.service_name}))
        provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=1000))
        log.info("tracing to %s", config.otlp_endpoint or type(exporter).__name__)
        return cls(provider)

    def traced(self, client: Client) -> Client:
        """`client`'s connection with this tracing interceptor (once, however often called)."""
        config = client.config()
        if any(isinstance(i, TracingInterceptor) for i in config["interceptors"]):
            return client
        config["interceptors"] = [*config["interceptors"], self.interceptor]
        return Client(**config)

    def shutdown(self) -> None:
        """Export what is buffered, then stop."""
        HTTPXClientInstrumentor().uninstrument()
        self.provider.shutdown()
