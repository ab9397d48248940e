"""A small merchant webhook endpoint on 127.0.0.1, for the demo (and tests): it verifies every
delivery the way a merchant must (Standard Webhooks signature and timestamp, see README "Merchant
webhooks") and keeps what it received, so the demo can print the event types per payment."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web
from pydantic import SecretStr

from activities.merchant_webhooks import verify
from workers.config import DurapayConfig


@dataclass(frozen=True)
class ReceivedWebhook:
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    verified: bool

    @property
    def id(self) -> str:
        return self.headers.get("webhook-id", "")

    @property
    def payload(self) -> dict:
        return json.loads(self.body)


@dataclass
class LocalMerchantEndpoint:
    secret: SecretStr
    # The HTTP status answered to verified deliveries (tests make the merchant "down" with 503).
    status: int = 200
    received: list[ReceivedWebhook] = field(default_factory=list)
    url: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/webhooks/durapay", self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/webhooks/durapay"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> LocalMerchantEndpoint:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        verified = verify(self.secret, headers, body)
        self.received.append(ReceivedWebhook(headers, body, verified))
        if not verified:
            return web.Response(status=400, text="signature check failed")
        return web.Response(status=self.status)

    def ids(self) -> list[str]:
        return [r.id for r in self.received]

    def types_for(self, payment_id: str) -> list[str]:
        """The verified event types for `payment_id`, in the order received, each id once."""
        seen: dict[str, str] = {}
        for r in self.received:
            if r.verified and r.payload["data"].get("payment_id") == payment_id:
                seen.setdefault(r.id, r.payload["type"])
        return list(seen.values())

    async def quiet(self, *, for_s: float = 1.0, at_most_s: float = 15.0) -> None:
        """Wait until no delivery arrived for `for_s` (deliveries follow the payments by a moment)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + at_most_s
        seen, last_change = -1, loop.time()
        while loop.time() < deadline:
            if len(self.received) != seen:
                seen, last_change = len(self.received), loop.time()
            elif loop.time() - last_change >= for_s:
                return
            await asyncio.sleep(0.1)

    def report(self, flows: Iterable[tuple[str, str | None]]) -> str:
        """The event types each (flow, payment id) got, and whether every delivery verified."""
        rows = [f"  {flow:40} {', '.join(self.types_for(pid)) if pid else '-'}" for flow, pid in flows]
        bad = sum(not r.verified for r in self.received)
        verdict = "all verified" if not bad else f"{bad} FAILED verification"
        return "\n".join(
            [f"merchant webhooks received at {self.url} ({len(self.received)}, {verdict}):", *rows]
        )


@asynccontextmanager
async def demo_merchant(
    config: DurapayConfig,
) -> AsyncIterator[tuple[DurapayConfig, LocalMerchantEndpoint | None]]:
    """For the demo: unless `[merchant_webhooks] url` is configured, a local merchant endpoint with
    a fresh secret, and `config` pointing the merchant webhooks at it (None: the configured one)."""
    if config.merchant_webhooks.url is not None:
        yield config, None
        return
    secret = SecretStr("whsec_" + base64.b64encode(secrets.token_bytes(32)).decode())
    async with LocalMerchantEndpoint(secret) as endpoint:
        webhooks = config.merchant_webhooks.model_copy(update={"url": endpoint.url, "secret": secret})
        yield config.model_copy(update={"merchant_webhooks": webhooks}), endpoint
