"""The API application: `/v1` (merchant API, bearer API keys), `/webhooks/{gateway}` (providers, no
API key: every notification is verified by its signature instead), `/healthz` and `/openapi.json`.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from api import payments, webhooks
from api.auth import API_KEY_ID, auth_middleware
from api.payments import DEPS
from api.ports import ApiDeps, RateLimit
from api.problems import problem_middleware, rate_limited

OPENAPI_DOCUMENT = "openapi.yaml"


@cache  # parsed once per process: the document is part of the code, not configuration
def load_openapi() -> dict[str, Any]:
    """The committed OpenAPI 3.1 document, the single description of this API."""
    return yaml.safe_load((Path(__file__).parent / OPENAPI_DOCUMENT).read_text(encoding="utf-8"))


def _rate_limit_middleware(deps: ApiDeps, limit: RateLimit, key_of: Any) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        if deps.rate_limiter is not None:
            allowed, retry_after = await deps.rate_limiter.hit(key_of(request), limit.window_s, limit.limit)
            if not allowed:
                raise rate_limited("rate_limited", f"At most {limit.limit} requests per {limit.window_s} s", retry_after)
        return await handler(request)

    return middleware


class AccessLogger(AbstractAccessLogger):
    """Access log without query strings or bodies, which are the caller's and could hold anything;
    pass as `access_log_class` to the runner."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            "%s %s %s %.1fms key=%s",
            request.method,
            request.path,
            response.status,
            time * 1000,
            request.get(API_KEY_ID, "-"),
        )


def create_app(deps: ApiDeps) -> web.Application:
    openapi_body = json.dumps(load_openapi()).encode()

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def openapi(request: web.Request) -> web.Response:
        return web.Response(body=openapi_body, content_type="application/json")

    # The root app creates every request, so its client_max_size bounds every body, webhooks too.
    app = web.Application(middlewares=[problem_middleware], client_max_size=deps.max_body_bytes)
    app[DEPS] = deps
    app.router.add_get("/healthz", healthz, allow_head=False)
    app.router.add_get("/openapi.json", openapi, allow_head=False)

    v1 = web.Application(
        middlewares=[
            auth_middleware(deps.api_keys),
            _rate_limit_middleware(deps, deps.api_rate_limit, lambda request: f"api:{request[API_KEY_ID]}"),
        ]
    )
    v1.add_routes(payments.routes())
    app.add_subapp("/v1", v1)

    hooks = web.Application(
        middlewares=[
            # Per sender, not per gateway: a flood from one address must not use up the budget
            # of the provider's genuine deliveries.
            _rate_limit_middleware(
                deps,
                deps.webhook_rate_limit,
                # .get: a method no route takes (405) reaches here without a matched gateway.
                lambda request: f"webhook:{request.match_info.get('gateway', '')}:{request.remote}",
            )
        ]
    )
    hooks.add_routes(webhooks.routes())
    app.add_subapp("/webhooks", hooks)
    return app
