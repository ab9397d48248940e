"""The shared HTTP transport against a tiny aiohttp provider with fault knobs, over real sockets:
every way a call can fail maps to the one gateway error that says what it means for the money."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
import pytest_asyncio
from aiohttp import web

from activities.gateways.base import (
    GatewayConfigError,
    GatewayInvalidRequest,
    GatewayOutcomeUnknown,
    GatewayRateLimited,
    GatewayTransientError,
)
from activities.gateways.http import HttpSettings, HttpTransport, parse_retry_after, raise_rejection

FAST = HttpSettings(connect_timeout_seconds=0.3, timeout_seconds=0.3)


@dataclass
class FaultyProvider:
    """Routes: /echo, /status/<code>?retry_after=..., /slow?delay=..., /drop (reads the request,
    then closes the connection without answering). `seen` counts requests that arrived whole."""

    url: str
    seen: list[str] = field(default_factory=list)


# One provider and one client for the module: building an httpx client loads the CA bundle, which
# costs more than most of these tests.
@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def provider() -> AsyncIterator[FaultyProvider]:
    seen: list[str] = []

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        seen.append(request.path)
        return web.json_response(
            {
                "method": request.method,
                "path": request.path_qs,
                "body": body.decode(),
                "auth": request.headers.get("Authorization"),
                "agent": request.headers.get("X-Client"),
            }
        )

    async def status(request: web.Request) -> web.Response:
        await request.read()
        seen.append(request.path)
        headers = {}
        if "retry_after" in request.query:
            headers["Retry-After"] = request.query["retry_after"]
        return web.json_response(
            {"code": "PARAM_ERROR", "message": "amount.total must be positive"},
            status=int(request.match_info["code"]),
            headers=headers,
        )

    async def slow(request: web.Request) -> web.Response:
        await request.read()
        seen.append(request.path)
        await asyncio.sleep(float(request.query.get("delay", "1")))
        return web.json_response({"late": True})

    async def drop(request: web.Request) -> web.StreamResponse:
        await request.read()
        seen.append(request.path)
        assert request.transport is not None
        request.transport.abort()  # the provider got everything, we get nothing back
        return web.Response()

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound("https://elsewhere.invalid/")

    app = web.Application()
    app.router.add_route("*", "/echo", echo)
    app.router.add_route("*", "/status/{code}", status)
    app.router.add_route("*", "/slow", slow)
    app.router.add_route("*", "/drop", drop)
    app.router.add_route("*", "/redirect", redirect)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield FaultyProvider(url=f"http://127.0.0.1:{port}", seen=seen)
    await runner.cleanup()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def transport(provider: FaultyProvider) -> AsyncIterator[HttpTransport]:
    client = HttpTransport("acme", provider.url, FAST, headers={"X-Client": "durapay"})
    yield client
    await client.aclose()


@pytest.fixture(autouse=True)
def forget_requests(provider: FaultyProvider) -> None:
    provider.seen.clear()


@pytest.fixture
def closed_port() -> int:
    """A port nothing listens on: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def unresponsive_port() -> Iterator[int]:
    """A listener whose accept queue is full: the kernel drops new SYNs, so connecting times out."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _ in range(8):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):  # connecting in the background is the point
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    yield port
    for sock in [*fillers, server]:
        sock.close()


async def test_success_uses_base_url_default_headers_and_exact_body(transport: HttpTransport) -> None:
    request = transport.build_request(
        "POST", "/echo", params={"a": "1"}, content=b'{"x":1}', headers={"Authorization": "signed"}
    )
    # What an adapter signs is what goes on the wire.
    assert (request.url.raw_path, request.content) == (b"/echo?a=1", b'{"x":1}')
    response = await transport.send(request)
    assert response.status_code == 200
    assert response.json() == {
        "method": "POST",
        "path": "/echo?a=1",
        "body": '{"x":1}',
        "auth": "signed",
        "agent": "durapay",
    }
    assert (await transport.request("GET", "/echo")).json()["method"] == "GET"


@pytest.mark.parametrize("status", [400, 404, 409, 422])
async def test_other_4xx_are_returned_to_the_adapter(transport: HttpTransport, status: int) -> None:
    response = await transport.request("POST", f"/status/{status}")
    assert response.status_code == status
    assert response.json()["code"] == "PARAM_ERROR"


async def test_redirects_are_not_followed(transport: HttpTransport) -> None:
    assert (await transport.request("GET", "/redirect")).status_code == 302


async def test_raise_rejection_carries_the_providers_code(transport: HttpTransport) -> None:
    response = await transport.request("POST", "/status/400?sign=SECRETSIG")
    body = response.json()
    with pytest.raises(GatewayInvalidRequest) as err:
        raise_rejection(response, code=body["code"], message=body["message"])
    assert err.value.code == "PARAM_ERROR"
    assert "400 PARAM_ERROR" in err.value.message and "amount.total must be positive" in err.value.message
    assert "SECRETSIG" not in err.value.message  # never the query string


@pytest.mark.parametrize("status", [401, 403])
async def test_auth_rejections_are_configuration_errors(transport: HttpTransport, status: int) -> None:
    response = await transport.request("POST", f"/status/{status}")
    with pytest.raises(GatewayConfigError) as err:
        raise_rejection(response)
    assert err.value.code == "gateway_auth_failed"


async def test_rejection_message_is_cleaned_and_bounded(transport: HttpTransport) -> None:
    response = await transport.request("POST", "/status/400")
    with pytest.raises(GatewayInvalidRequest) as err:
        raise_rejection(response, message="bad\r\ninjected " + "x" * 1000)
    assert "\n" not in err.value.message and len(err.value.message) < 300
    assert err.value.code == "gateway_invalid_request"  # no provider code: the stable default


async def test_429_with_seconds(transport: HttpTransport) -> None:
    with pytest.raises(GatewayRateLimited) as err:
        await transport.request("POST", "/status/429?retry_after=7")
    assert err.value.retry_after == 7.0


async def test_429_with_http_date(transport: HttpTransport) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    with pytest.raises(GatewayRateLimited) as err:
        await transport.request("POST", "/status/429", params={"retry_after": when})
    assert err.value.retry_after is not None and 25 <= err.value.retry_after <= 30


async def test_429_without_retry_after(transport: HttpTransport) -> None:
    with pytest.raises(GatewayRateLimited) as err:
        await transport.request("POST", "/status/429")
    assert err.value.retry_after is None


async def test_503_is_transient_not_unknown(transport: HttpTransport) -> None:
    with pytest.raises(GatewayTransientError) as err:
        await transport.request("POST", "/status/503")
    assert not isinstance(err.value, GatewayOutcomeUnknown)


@pytest.mark.parametrize("status", [500, 502, 504])
async def test_other_5xx_leave_the_outcome_unknown(transport: HttpTransport, status: int) -> None:
    with pytest.raises(GatewayOutcomeUnknown, match=str(status)):
        await transport.request("POST", f"/status/{status}")


async def test_read_timeout_is_outcome_unknown(transport: HttpTransport, provider: FaultyProvider) -> None:
    with pytest.raises(GatewayOutcomeUnknown, match="ReadTimeout"):
        await transport.request("POST", "/slow?delay=0.8", content=b"{}")
    assert provider.seen == ["/slow"]  # it did arrive


async def test_connection_dropped_after_the_request_is_outcome_unknown(
    transport: HttpTransport, provider: FaultyProvider
) -> None:
    with pytest.raises(GatewayOutcomeUnknown, match="/drop"):
        await transport.request("POST", "/drop", content=b'{"amount": 100}')
    assert provider.seen == ["/drop"]
    # The pool recovers: the next call on the same transport works.
    assert (await transport.request("GET", "/echo")).status_code == 200


async def test_connection_refused_is_transient(closed_port: int) -> None:
    client = HttpTransport("acme", f"http://127.0.0.1:{closed_port}", FAST)
    try:
        with pytest.raises(GatewayTransientError, match="not sent") as err:
            await client.request("POST", "/pay?key=SECRET", content=b"{}")
        assert not isinstance(err.value, GatewayOutcomeUnknown)
        assert err.value.code == "gateway_unreachable"
        assert "SECRET" not in err.value.message
    finally:
        await client.aclose()


async def test_connect_timeout_is_transient(unresponsive_port: int) -> None:
    client = HttpTransport("acme", f"http://127.0.0.1:{unresponsive_port}", FAST)
    try:
        with pytest.raises(GatewayTransientError, match="ConnectTimeout") as err:
            await client.request("POST", "/pay", content=b"{}")
        assert not isinstance(err.value, GatewayOutcomeUnknown)
    finally:
        await client.aclose()


async def test_bad_scheme_is_a_configuration_error() -> None:
    client = HttpTransport("acme", "ftp://127.0.0.1:1")
    try:
        with pytest.raises(GatewayConfigError):
            await client.request("GET", "/")
    finally:
        await client.aclose()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("120", 120.0),
        (" 3 ", 3.0),
        ("1.5", 1.5),
        ("soon", None),
        ("-5", None),
        ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),  # in the past: retry now, never a negative delay
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    now = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC)
    assert parse_retry_after(value, now=now) == expected


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError):
        HttpSettings(timeout_seconds=0)
    with pytest.raises(ValueError):
        HttpSettings(retries=3)


async def test_requests_resolve_against_the_base_path() -> None:
    # Adapters sign httpx request objects (raw path and body bytes) before sending them.
    client = HttpTransport("acme", "https://api.example.com/v3/")
    request = client.build_request("GET", "pay/transactions/id/1", params={"mchid": "190"})
    await client.aclose()
    assert isinstance(request, httpx.Request)
    assert str(request.url) == "https://api.example.com/v3/pay/transactions/id/1?mchid=190"
