"""A fake Kount 360: the OAuth token endpoint and the Orders API, with Kount's checks: Basic API key
on the token call, `grant_type` / `scope`, a bearer token that expires (401 after it), the fields an
order requires, integer minor-unit amounts."""

from __future__ import annotations

import secrets
import time
from typing import Any

from aiohttp import web

from activities.fraud_providers.fake_server import FakeServer, scripted_decision
from activities.fraud_providers.kount import transform
from workflows.domain import FraudDecision

TOKEN_PATH = "/oauth2/token"
_ANSWERS = {
    FraudDecision.ALLOW: ("APPROVE", 88),
    FraudDecision.REVIEW: ("REVIEW", 45),
    FraudDecision.BLOCK: ("DECLINE", 7),
}


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": {"code": status, "message": message}}, status=status)


class FakeKount(FakeServer):
    def __init__(self, api_key: str = "kount_portal_key", token_lifetime: int = 1200) -> None:
        super().__init__()
        self.api_key = api_key
        self.token_lifetime = token_lifetime
        self.tokens_issued = 0
        self._tokens: dict[str, float] = {}  # token -> expiry (wall clock)
        self.orders: dict[str, dict[str, Any]] = {}

    @property
    def token_url(self) -> str:
        return self.url + TOKEN_PATH

    def expire_tokens(self) -> None:
        self._tokens.clear()

    def routes(self, app: web.Application) -> None:
        app.router.add_post(TOKEN_PATH, self._token)
        app.router.add_post(transform.ORDERS, self._create)
        app.router.add_patch(transform.ORDERS + "/{order_id}", self._update)

    async def _token(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Basic {self.api_key}":
            return web.json_response({"error": "invalid_client"}, status=401)
        form = await request.post()
        if form.get("grant_type") != "client_credentials" or form.get("scope") != "k1_integration_api":
            return web.json_response({"error": "invalid_request"}, status=400)
        token = secrets.token_urlsafe(16)
        self._tokens[token] = time.time() + self.token_lifetime
        self.tokens_issued += 1
        return web.json_response(
            {
                "token_type": "Bearer",
                "expires_in": self.token_lifetime,
                "access_token": token,
                "scope": "k1_integration_api",
            }
        )

    def _authorized(self, request: web.Request) -> bool:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        return scheme == "Bearer" and self._tokens.get(token, 0) > time.time()

    async def _create(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _error(401, "invalid or expired token")
        body = await request.json()
        if not isinstance(body, dict) or not body.get("merchantOrderId"):
            return _error(400, "merchantOrderId is required")
        for t in body.get("transactions") or []:
            if not isinstance(t.get("orderTotal"), int) or not t.get("currency"):
                return _error(
                    400, "transactions[].orderTotal must be an integer in minor units, with currency"
                )
        self.record(request, body)
        order_id = f"K{len(self.orders) + 1:08d}"
        self.orders[order_id] = body
        account = body.get("account") or {}
        decision, omniscore = _ANSWERS[scripted_decision(account.get("email"))]
        answer: dict[str, Any] = {
            "version": "v2",
            "order": {"orderId": order_id, "merchantOrderId": body["merchantOrderId"]},
        }
        if request.query.get("riskInquiry") == "true":
            answer["order"]["riskInquiry"] = {
                "decision": decision,
                "omniscore": omniscore,
                "segmentExecuted": {"segment": {"name": "Default"}, "policiesExecuted": []},
            }
        return web.json_response(answer, status=201)

    async def _update(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _error(401, "invalid or expired token")
        order_id = request.match_info["order_id"]
        if order_id not in self.orders:
            return _error(404, "order not found")
        body = await request.json()
        self.record(request, body)
        return web.json_response({"version": "v2", "order": {"orderId": order_id}})
