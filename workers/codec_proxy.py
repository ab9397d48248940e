"""`durapay dev`'s codec endpoint for the Temporal UI: a loopback-only proxy that forwards the UI's
codec calls (`/decode`, `/encode`, also under a namespace segment, and their CORS preflights) to the
API's codec server (api/codec_server.py), adding `Authorization: Bearer <an ops key>`.

The UI cannot send an API key with its codec calls, and the API rightly refuses them without one.
This proxy hands decoded customer data to anything that can reach it, which is acceptable only on the
developer's own machine: it binds to a loopback address or not at all. Production puts a real
authenticating proxy in front of the codec server instead (docs/OPERATIONS.md).

CORS stays the API's decision: the browser's `Origin` and preflight headers go upstream and the
API's `Access-Control-*` answers come back, so `[temporal] codec_cors_origins` applies unchanged.
The upstream is set once the API is listening (`forward_to`): the dev server, which needs this
proxy's URL, starts before the API has a port; calls before that are answered 503.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from aiohttp import web
from pydantic import SecretStr

from api.problems import Problem

log = logging.getLogger("durapay.codec_proxy")

_FORWARDED_REQUEST_HEADERS = (
    "Content-Type",
    "X-Namespace",
    "Origin",
    "Access-Control-Request-Method",
    "Access-Control-Request-Headers",
)
_UPSTREAM_TIMEOUT = aiohttp.ClientTimeout(total=30)


class CodecProxyError(ValueError):
    """The proxy was asked to listen where it must not."""


def require_loopback(host: str) -> None:
    """Only a loopback IP address: a name could resolve anywhere, and any other address exposes
    decoded customer data to the network."""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise CodecProxyError(
            f"the codec proxy adds an API key to every request, so it listens on a loopback address "
            f"only (such as 127.0.0.1), not {host!r}"
        )


class CodecProxy:
    """The proxy's state: the key it adds and where it forwards to (None until the API is up)."""

    def __init__(self, api_key: SecretStr) -> None:
        self._api_key = api_key
        self.upstream: str | None = None
        self.url = ""  # set once listening

    def __repr__(self) -> str:  # never the key
        return f"CodecProxy(url={self.url!r}, upstream={self.upstream!r})"

    def forward_to(self, codec_base_url: str) -> None:
        """`codec_base_url`: the API's codec server, e.g. `http://127.0.0.1:8080/codec`."""
        self.upstream = codec_base_url.rstrip("/")

    def app(self, http: aiohttp.ClientSession) -> web.Application:
        async def forward(request: web.Request) -> web.StreamResponse:
            try:
                return await self._forward(http, request)
            except Problem as problem:
                return problem.response()

        app = web.Application()
        for operation in ("decode", "encode"):
            for path in (f"/{operation}", f"/{{namespace}}/{operation}"):
                app.router.add_post(path, forward)
                app.router.add_route("OPTIONS", path, forward)
        return app

    async def _forward(self, http: aiohttp.ClientSession, request: web.Request) -> web.Response:
        if self.upstream is None:
            raise Problem(503, "codec_not_ready", "The API is not listening yet", "Retry in a moment.")
        headers = {
            name: request.headers[name] for name in _FORWARDED_REQUEST_HEADERS if name in request.headers
        }
        if request.method == "POST":  # preflights go without credentials, as from the browser
            headers["Authorization"] = f"Bearer {self._api_key.get_secret_value()}"
        try:
            async with http.request(
                request.method, self.upstream + request.path, data=await request.read(), headers=headers
            ) as upstream:
                body = await upstream.read()
                answer = {
                    name: value
                    for name, value in upstream.headers.items()
                    if name.lower().startswith("access-control-") or name.lower() in ("content-type", "vary")
                }
                return web.Response(status=upstream.status, body=body, headers=answer)
        except aiohttp.ClientError as exc:
            log.warning("codec proxy: %s %s: %s", request.method, request.path, exc)
            raise Problem(502, "codec_unreachable", "The API's codec server did not answer") from None


@asynccontextmanager
async def running_codec_proxy(api_key: SecretStr, host: str = "127.0.0.1") -> AsyncIterator[CodecProxy]:
    """The proxy on `host` (loopback only) at an ephemeral port, `proxy.url` set, until the exit."""
    require_loopback(host)
    proxy = CodecProxy(api_key)
    async with aiohttp.ClientSession(timeout=_UPSTREAM_TIMEOUT) as http:
        runner = web.AppRunner(proxy.app(http), access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, 0)
            await site.start()
            bound_host, port = runner.addresses[0][:2]
            url_host = f"[{bound_host}]" if ":" in bound_host else bound_host
            proxy.url = f"http://{url_host}:{port}"
            yield proxy
        finally:
            await runner.cleanup()
