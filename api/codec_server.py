"""A codec server (Temporal's codec server protocol) over this deployment's payload codec, so that the
Temporal UI and CLI can show encrypted payment histories: `POST /codec/decode` and `/codec/encode`, each
also under a namespace segment (`/codec/{namespace}/decode`, the form the CLI's `{namespace}` template
produces). Bodies are `Payloads` in protobuf JSON (`{"payloads": [{"metadata": {...}, "data": "..."}]}`).
One codec serves every namespace, so the segment and the UI's `X-Namespace` header are not consulted.

Decoding hands out plaintext customer data, so every POST needs an API key with the `ops` scope
(`Authorization: Bearer <key>`), is rate limited per key (`[api] codec_rate_limit_per_minute`) and
is logged with the key's id. A refusal says why in general terms only: which encryption keys this
deployment holds is nobody's business outside (the log has it). The browser sends CORS preflights
without credentials (as the Fetch standard requires): those are answered without a key, and only
origins in `cors_origins` (the Temporal UI's) are allowed to read the answers.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any

from aiohttp import web
from google.protobuf import json_format
from pydantic import SecretStr
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.converter import PayloadCodec

from api.auth import API_KEY_ID, Scope, auth_middleware, require_scope
from api.problems import Problem

log = logging.getLogger("durapay.codec")

PREFIX = "/codec"
_ALLOW_HEADERS = "authorization, content-type, x-namespace"
_PREFLIGHT_MAX_AGE_S = "600"

Transform = Callable[[Sequence[Payload]], Awaitable[list[Payload]]]


def _cors_middleware(origins: frozenset[str]) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            response = await handler(request)
        except Problem as problem:
            # Rendered here rather than by the root middleware, so that the UI can read a 401 or
            # 422 (and show why) instead of a bare CORS failure.
            response = problem.response()
        origin = request.headers.get("Origin")
        if origin is not None and origin in origins:
            response.headers["Access-Control-Allow-Origin"] = origin
            # The UI's "include cross-origin credentials" option needs this to read the answer.
            response.headers["Access-Control-Allow-Credentials"] = "true"
            if request.method == "OPTIONS":
                response.headers["Access-Control-Allow-Methods"] = "POST"
                response.headers["Access-Control-Allow-Headers"] = _ALLOW_HEADERS
                response.headers["Access-Control-Max-Age"] = _PREFLIGHT_MAX_AGE_S
        response.headers["Vary"] = "Origin"
        return response

    return middleware


@web.middleware
async def _ops_scope(request: web.Request, handler: Any) -> web.StreamResponse:
    require_scope(request, Scope.OPS)
    return await handler(request)


def _posts_only(middleware: Any) -> Any:
    """`middleware` for POSTs; a preflight carries no credentials and returns no data."""

    @web.middleware
    async def posts_only(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.method == "OPTIONS":
            return await handler(request)
        return await middleware(request, handler)

    return posts_only


async def _preflight(request: web.Request) -> web.Response:
    return web.Response(status=204)


def _handler(operation: str, transform: Transform) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        try:
            payloads = json_format.Parse(await request.read(), Payloads())
        except (json_format.ParseError, UnicodeDecodeError):
            raise Problem(
                400, "invalid_payloads", "Malformed payloads", 'Send {"payloads": [...]} in protobuf JSON.'
            ) from None
        try:
            result = await transform(payloads.payloads)
        except ValueError as exc:  # the codec's refusal: unknown key, altered ciphertext
            log.warning("codec %s refused by key %s: %s", operation, request[API_KEY_ID], exc)
            # The same answer for every refusal: which keys this deployment holds, and which
            # check failed, are not for the caller.
            raise Problem(
                422,
                "payload_not_decodable",
                "A payload could not be processed",
                "A payload is sealed with a key this deployment does not hold, or was altered.",
            ) from None
        log.info("codec %s of %d payload(s) by key %s", operation, len(result), request[API_KEY_ID])
        body = json_format.MessageToJson(Payloads(payloads=result), indent=None)
        return web.Response(text=body, content_type="application/json")

    return handle


def create_codec_app(
    codec: PayloadCodec,
    *,
    api_keys: Mapping[str, SecretStr],
    key_scopes: Mapping[str, frozenset[str]],
    cors_origins: Collection[str],
    rate_limit: Any = None,
) -> web.Application:
    """The codec server as a sub-app; `api.app.create_app` mounts it at `PREFIX`. `rate_limit`: a
    middleware counting POSTs per API key (api/rate_limit.py), after authentication."""
    middlewares = [
        _cors_middleware(frozenset(cors_origins)),
        _posts_only(auth_middleware(api_keys, key_scopes=key_scopes)),
        _posts_only(_ops_scope),
    ]
    if rate_limit is not None:
        middlewares.append(_posts_only(rate_limit))
    app = web.Application(middlewares=middlewares)
    for operation, transform in (("encode", codec.encode), ("decode", codec.decode)):
        handle = _handler(operation, transform)
        for path in (f"/{operation}", f"/{{namespace}}/{operation}"):
            app.router.add_post(path, handle)
            app.router.add_route("OPTIONS", path, _preflight)
    return app
