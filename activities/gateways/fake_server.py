"""What the fake provider servers share: generated keys, fault knobs (5xx, 429, latency, answers
dropped after the work was done), an aiohttp server on an ephemeral 127.0.0.1 port, and delivering
a notification like a provider does. Each gateway's own fake lives in its folder (`<id>/fake.py`)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from typing import Literal

import aiohttp
from aiohttp import web

from activities.gateways.signing import generate_rsa_keypair, self_signed_certificate

# ---------------------------------------------------------------------------- keys


@cache
def keypair(slot: str) -> tuple[str, str]:
    """A generated RSA key pair per named slot, made once per process: 2048-bit generation costs
    up to seconds on a busy machine, and fakes only need keys that are distinct per role."""
    return generate_rsa_keypair()


@cache
def certificate(slot: str) -> str:
    return self_signed_certificate(keypair(slot)[0], f"fake platform {slot}")


# ---------------------------------------------------------------------------- faults


@dataclass
class _Fault:
    kind: Literal["status", "drop", "delay"]
    match: str | None
    times: int
    status: int = 500
    retry_after: str | None = None
    seconds: float = 0.0


class FaultPlan:
    """Faults for the next matching requests, in order. `match` is a substring of the operation
    name the fake gives a request (a URL path for WeChat, the `method` parameter for AliPay)."""

    def __init__(self) -> None:
        self._faults: list[_Fault] = []
        self.latency = 0.0  # added to every answer

    def fail_next(self, status: int = 500, *, times: int = 1, match: str | None = None) -> None:
        """Answer `status` without doing the work."""
        self._faults.append(_Fault("status", match, times, status=status))

    def rate_limit_next(
        self, *, times: int = 1, retry_after: str | None = "1", match: str | None = None
    ) -> None:
        self._faults.append(_Fault("status", match, times, status=429, retry_after=retry_after))

    def drop_next(self, *, times: int = 1, match: str | None = None) -> None:
        """Do the work, then drop the connection before answering (the lost-response case)."""
        self._faults.append(_Fault("drop", match, times))

    def delay_next(self, seconds: float, *, times: int = 1, match: str | None = None) -> None:
        """Do the work, then answer only after `seconds` (past a client's read timeout)."""
        self._faults.append(_Fault("delay", match, times, seconds=seconds))

    def clear(self) -> None:
        self._faults.clear()
        self.latency = 0.0

    def _take(self, operation: str) -> _Fault | None:
        for fault in self._faults:
            if fault.match is None or fault.match in operation:
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    async def run(
        self,
        request: web.Request,
        operation: str,
        work: Callable[[], Awaitable[web.StreamResponse]],
        error: Callable[[int], web.StreamResponse],
    ) -> web.StreamResponse:
        """Apply the next fault for `operation` around `work`; `error(status)` renders the
        provider's own error answer."""
        fault = self._take(operation)
        if self.latency:
            await asyncio.sleep(self.latency)
        if fault is not None and fault.kind == "status":
            response = error(fault.status)
            if fault.retry_after is not None:
                response.headers["Retry-After"] = fault.retry_after
            return response
        response = await work()
        if fault is not None and fault.kind == "delay":
            await asyncio.sleep(fault.seconds)
        if fault is not None and fault.kind == "drop" and request.transport is not None:
            request.transport.close()
        return response


class FakeServer:
    """Start / stop an aiohttp app on an ephemeral 127.0.0.1 port."""

    def __init__(self) -> None:
        self.app = web.Application()
        self._runner: web.AppRunner | None = None
        # Until started: a loopback address nothing listens on (settings built from an unstarted
        # fake are valid, and a call through them fails at once).
        self.base_url = "http://127.0.0.1:0"

    async def start(self) -> str:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    @property
    def url(self) -> str:
        """Where the fake listens, for `durapay dev`'s banner."""
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self):
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def post_to(url: str, headers: dict[str, str], body: bytes) -> tuple[int, str]:
    """Deliver a notification like the provider does; returns (status, body) of the receiver."""
    async with aiohttp.ClientSession() as session, session.post(url, data=body, headers=headers) as response:
        return response.status, await response.text()
