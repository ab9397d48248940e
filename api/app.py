"""The API application: `/v1` (merchant API, bearer API keys), `/webhooks/{gateway}` (providers, no
API key: every notification is verified by its signature instead), `/livez`, `/readyz` (`/healthz`:
the old name of `/livez`, kept for probes written against it) and `/openapi.json`; when configured,
`/metrics` (api/metrics.py) and the codec server at `/codec` (api/codec_server.py). With a tracer,
every request is a server span, the parent of whatever the handler does (Temporal calls included).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from opentelemetry import propagate
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from api import bank_transfer, customers, events, payment_list, payments, review, webhooks
from api.auth import API_KEY_ID, CALLER, auth_middleware, scope_middleware
from api.codec_server import PREFIX as CODEC_PREFIX
from api.codec_server import create_codec_app
from api.forwarded import sender_address
from api.limits import RateLimit
from api.metrics import METRICS_PATH, ApiMetrics
from api.payments import DEPS
from api.ports import ApiDeps
from api.problems import problem_middleware, rate_limited
from api.rate_limit import rate_limit_middleware
from api.rejection_sample import RejectionSample
from api.schemas import mask_card_numbers
from api.token_buckets import TokenBuckets

OPENAPI_DOCUMENT = "openapi.yaml"
WEBHOOKS_PREFIX = "/webhooks"


@cache  # parsed once per process: the document is part of the code, not configuration
def load_openapi() -> dict[str, Any]:
    """The committed OpenAPI 3.1 document, the single description of this API."""
    return yaml.safe_load((Path(__file__).parent / OPENAPI_DOCUMENT).read_text(encoding="utf-8"))


def _token_bucket_middleware(deps: ApiDeps, limit: RateLimit, key_of: Callable[[web.Request], str]) -> Any:
    """Like `rate_limit_middleware` (api/rate_limit.py), on when rate limiting is (`deps.rate_limiter`), but counted
    in this instance's memory (`TokenBuckets`)."""
    buckets = TokenBuckets(limit)

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        if deps.rate_limiter is not None:
            allowed, retry_after = buckets.take(key_of(request))
            if not allowed:
                raise rate_limited(
                    "rate_limited", f"At most {limit.limit} requests per {limit.window_s} s", retry_after
                )
        return await handler(request)

    return middleware


class AccessLogger(AbstractAccessLogger):
    """Access log without query strings or bodies, which are the caller's and could hold anything,
    and with card numbers masked in the path (a caller may put one there too); pass as
    `access_log_class` to the runner."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        if response.status < 400 and request.path.startswith(WEBHOOKS_PREFIX + "/"):
            return  # an accepted webhook: the receiver logs it, with its event and outcome
        self.logger.info(
            "%s %s %s %.1fms key=%s",
            request.method,
            mask_card_numbers(request.path),
            response.status,
            time * 1000,
            request.get(API_KEY_ID, "-"),
        )


def _known_gateway(deps: ApiDeps, request: web.Request) -> str:
    """The gateway a webhook is addressed to, if it is one we have: the path is the sender's to
    choose, and must neither add keys to the limiter at will nor carry anything into it.
    (A method no route takes, a 405, arrives without a matched gateway at all.)"""
    gateway = request.match_info.get("gateway", "")
    return gateway if deps.webhooks.known(gateway) else "-"


# check name -> "ok" or why not (database, temporal, worker); ready when every one is "ok".
ReadinessProbe = Callable[[], Awaitable[dict[str, str]]]


def health_routes(readiness: ReadinessProbe | None) -> list[web.RouteDef]:
    """`/livez` (and its old name `/healthz`): the process answers. `/readyz`: 200 when every
    check is ok, else 503 with the failing ones; no checks (None): ready."""

    async def livez(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        checks = await readiness() if readiness is not None else {}
        ready = all(result == "ok" for result in checks.values())
        return web.json_response(
            {"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503
        )

    return [
        web.get("/livez", livez, allow_head=False),
        web.get("/healthz", livez, allow_head=False),
        web.get("/readyz", readyz, allow_head=False),
    ]


# The payment a request is about, when its path names one: for log lines (workers/logging_setup.py).
REQUEST_PAYMENT_ID: ContextVar[str | None] = ContextVar("durapay_request_payment_id", default=None)
# The authenticated caller's merchant, once /v1's authentication has run: for log lines too.
REQUEST_MERCHANT_ID: ContextVar[str | None] = ContextVar("durapay_request_merchant_id", default=None)


@web.middleware
async def request_context_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Sets `REQUEST_PAYMENT_ID` while the request is handled."""
    token = REQUEST_PAYMENT_ID.set(request.match_info.get("payment_id"))
    try:
        return await handler(request)
    finally:
        REQUEST_PAYMENT_ID.reset(token)


@web.middleware
async def caller_context_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Sets `REQUEST_MERCHANT_ID` to the authenticated caller's merchant while the request is handled."""
    token = REQUEST_MERCHANT_ID.set(request[CALLER].merchant_id)
    try:
        return await handler(request)
    finally:
        REQUEST_MERCHANT_ID.reset(token)


def _tracing_middleware(tracer: Tracer) -> Any:
    """A server span per request, continuing a caller's `traceparent`. Named by route template,
    never by path: a path is the caller's and could hold anything."""

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        with tracer.start_as_current_span(
            f"{request.method} {route}",
            context=propagate.extract(request.headers),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": request.method, "http.route": route},
        ) as span:
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                span.set_attribute("http.response.status_code", exc.status)
                raise
            span.set_attribute("http.response.status_code", response.status)
            if response.status >= 500:
                span.set_status(Status(StatusCode.ERROR))
            return response

    return middleware


def create_app(
    deps: ApiDeps, *, readiness: ReadinessProbe | None = None, tracer: Tracer | None = None
) -> web.Application:
    openapi_body = json.dumps(load_openapi()).encode()

    async def openapi(request: web.Request) -> web.Response:
        return web.Response(body=openapi_body, content_type="application/json")

    # One registry per app: two apps in a process (tests, two instances) keep their own counts.
    metrics = ApiMetrics() if deps.serve_metrics else None
    middlewares = [request_context_middleware, problem_middleware]
    deps = replace(deps, inbox=RejectionSample(deps.inbox, deps.limits.rejected_webhook_sample))
    if metrics is not None:
        # Outside the sample: every rejection is counted, recorded or not.
        deps = replace(deps, inbox=metrics.counting(deps.inbox))
        middlewares.insert(0, metrics.middleware)
    if tracer is not None:
        middlewares.insert(0, _tracing_middleware(tracer))
    # The root app creates every request, so its client_max_size bounds every body, webhooks too.
    app = web.Application(middlewares=middlewares, client_max_size=deps.limits.max_body_bytes)
    app[DEPS] = deps
    app.add_routes(health_routes(readiness))
    app.router.add_get("/openapi.json", openapi, allow_head=False)
    if metrics is not None:
        app.router.add_get(METRICS_PATH, metrics.expose, allow_head=False)

    v1 = web.Application(
        middlewares=[
            auth_middleware(deps.api_keys, deps.key_merchants, deps.key_scopes),
            caller_context_middleware,
            scope_middleware,
            rate_limit_middleware(
                deps.rate_limiter, deps.limits.api_rate_limit, lambda request: f"api:{request[API_KEY_ID]}"
            ),
        ]
    )
    v1.add_routes(payments.routes())
    v1.add_routes(payment_list.routes())
    v1.add_routes(customers.routes())
    v1.add_routes(events.routes())
    v1.add_routes(review.routes())
    v1.add_routes(bank_transfer.routes())
    app.add_subapp("/v1", v1)

    hooks = web.Application(
        middlewares=[
            # Per sender, not per gateway: a flood from one address must not use up the budget
            # of the provider's genuine deliveries. Per instance, in memory: flood protection
            # needs no global count, and the receiver's hot path no extra database write.
            _token_bucket_middleware(
                deps,
                deps.limits.webhook_rate_limit,
                lambda request: (
                    f"webhook:{_known_gateway(deps, request)}"
                    f":{sender_address(request, deps.limits.trusted_proxies)}"
                ),
            )
        ]
    )
    hooks.add_routes(webhooks.routes())
    app.add_subapp(WEBHOOKS_PREFIX, hooks)

    if deps.codec is not None:
        codec = create_codec_app(
            deps.codec,
            api_keys=deps.api_keys,
            key_scopes=deps.key_scopes,
            cors_origins=deps.codec_cors_origins,
            rate_limit=rate_limit_middleware(
                deps.rate_limiter,
                deps.limits.codec_rate_limit,
                lambda request: f"codec:{request[API_KEY_ID]}",
            ),
        )
        app.add_subapp(CODEC_PREFIX, codec)
    return app
