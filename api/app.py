"""The API application: `/v1` (merchant API, bearer API keys), `/webhooks/{gateway}` (providers, no
API key: every notification is verified by its signature instead), `/healthz` and `/openapi.json`;
when configured, `/metrics` (api/metrics.py) and the codec server at `/codec` (api/codec_server.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from api import customers, payment_list, payments, webhooks
from api.auth import API_KEY_ID, auth_middleware, scope_middleware
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


def create_app(deps: ApiDeps) -> web.Application:
    openapi_body = json.dumps(load_openapi()).encode()

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def openapi(request: web.Request) -> web.Response:
        return web.Response(body=openapi_body, content_type="application/json")

    # One registry per app: two apps in a process (tests, two instances) keep their own counts.
    metrics = ApiMetrics() if deps.serve_metrics else None
    middlewares = [problem_middleware]
    deps = replace(deps, inbox=RejectionSample(deps.inbox, deps.limits.rejected_webhook_sample))
    if metrics is not None:
        # Outside the sample: every rejection is counted, recorded or not.
        deps = replace(deps, inbox=metrics.counting(deps.inbox))
        middlewares.insert(0, metrics.middleware)
    # The root app creates every request, so its client_max_size bounds every body, webhooks too.
    app = web.Application(middlewares=middlewares, client_max_size=deps.limits.max_body_bytes)
    app[DEPS] = deps
    app.router.add_get("/healthz", healthz, allow_head=False)
    app.router.add_get("/openapi.json", openapi, allow_head=False)
    if metrics is not None:
        app.router.add_get(METRICS_PATH, metrics.expose, allow_head=False)

    v1 = web.Application(
        middlewares=[
            auth_middleware(deps.api_keys, deps.key_merchants, deps.key_scopes),
            scope_middleware,
            rate_limit_middleware(
                deps.rate_limiter, deps.limits.api_rate_limit, lambda request: f"api:{request[API_KEY_ID]}"
            ),
        ]
    )
    v1.add_routes(payments.routes())
    v1.add_routes(payment_list.routes())
    v1.add_routes(customers.routes())
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
    app.add_subapp("/webhooks", hooks)

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
