"""A small merchant webhook endpoint on 127.0.0.1, for the demo (and tests): it verifies every
delivery the way a merchant must (Standard Webhooks signature and timestamp, see README "Merchant
webhooks") and keeps what it received, so the demo can print the event types per payment."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from aiohttp import web
from pydantic import SecretStr

from activities.merchant_webhooks import verify


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
