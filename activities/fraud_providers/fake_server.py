"""What every fake screening service shares: an aiohttp app on 127.0.0.1 (an ephemeral port), an
outage switch, and the list of requests it accepted, for tests and the demo.

The fakes decide by the customer's e-mail, the way Kount's "predictive" test values do: an address
starting with `block` is refused, `review` is held, anything else passes with a low score.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from workflows.domain import FraudDecision


def scripted_decision(email: str | None) -> FraudDecision:
    local = (email or "").split("@", 1)[0].lower()
    if local.startswith("block"):
        return FraudDecision.BLOCK
    if local.startswith("review"):
        return FraudDecision.REVIEW
    return FraudDecision.ALLOW


@dataclass
class Received:
    path: str
    body: Any


class FakeServer:
    def __init__(self) -> None:
        self.down = False  # True: every request gets a 503, like a service in an outage
        self.received: list[Received] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    @web.middleware
    async def _outage(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if self.down:
            return web.json_response({"error": "service unavailable"}, status=503)
        response: web.StreamResponse = await handler(request)
        return response

    def record(self, request: web.Request, body: Any) -> None:
        self.received.append(Received(request.path, body))

    def bodies(self, path: str) -> list[Any]:
        return [r.body for r in self.received if r.path == path]

    async def start(self) -> str:
        app = web.Application(middlewares=[self._outage])
        self.routes(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
