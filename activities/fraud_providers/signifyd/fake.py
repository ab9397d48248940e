"""A fake Signifyd v3: checkouts (decision), transactions and chargebacks, with Signifyd's checks:
Basic auth with the team key and an empty password (401), the required fields (400 with an
`errors` map), decimal amounts with no more places than the currency has."""

from __future__ import annotations

import base64
import functools
import itertools
import json
from decimal import Decimal
from typing import Any

from aiohttp import web

from activities.fraud_providers.fake_server import FakeServer, scripted_decision
from activities.fraud_providers.signifyd import transform
from workflows.domain import FraudDecision
from workflows.money import exponent

_ANSWERS = {
    FraudDecision.ALLOW: ("ACCEPT", 870),
    FraudDecision.REVIEW: ("HOLD", 420),
    FraudDecision.BLOCK: ("REJECT", 60),
}


def _bad(errors: dict[str, list[str]]) -> web.Response:
    return web.json_response({"errors": errors, "traceId": "fake"}, status=400)


def _amount_error(amount: Any, currency: Any) -> str | None:
    if isinstance(amount, int) and not isinstance(amount, bool):
        amount = Decimal(amount)  # a JSON number without a fraction
    if not isinstance(amount, Decimal) or not isinstance(currency, str):
        return "must be a decimal number with its currency"
    try:
        places = exponent(currency)
    except ValueError:
        return f"unknown currency {currency}"
    if amount < 0 or -amount.as_tuple().exponent > places:  # type: ignore[operator]
        return f"must be positive with at most {places} decimal places"
    return None


class FakeSignifyd(FakeServer):
    def __init__(self, api_key: str = "signifyd_team_key") -> None:
        super().__init__()
        self.api_key = api_key
        self._ids = itertools.count(5_000_000)

    def routes(self, app: web.Application) -> None:
        app.router.add_post(transform.CHECKOUTS, self._checkout)
        app.router.add_post(transform.TRANSACTIONS, self._transactions)
        app.router.add_post(transform.CHARGEBACKS, self._chargebacks)

    async def _body(self, request: web.Request) -> dict[str, Any] | web.Response:
        expected = "Basic " + base64.b64encode(f"{self.api_key}:".encode()).decode()
        if request.headers.get("Authorization") != expected:
            return web.json_response({"messages": ["Unauthorized"]}, status=401)
        try:
            body = await request.json(loads=functools.partial(json.loads, parse_float=Decimal))
        except ValueError:
            return _bad({"body": ["malformed JSON"]})
        if not isinstance(body, dict) or not body.get("orderId"):
            return _bad({"orderId": ["must not be empty"]})
        return body

    async def _checkout(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        purchase = body.get("purchase") or {}
        errors: dict[str, list[str]] = {}
        if not body.get("checkoutId"):
            errors["checkoutId"] = ["must not be empty"]
        if not purchase.get("createdAt"):
            errors["purchase.createdAt"] = ["must not be empty"]
        amount_error = _amount_error(purchase.get("totalPrice"), purchase.get("currency"))
        if amount_error:
            errors["purchase.totalPrice"] = [amount_error]
        if errors:
            return _bad(errors)
        self.record(request, body)
        email = purchase.get("confirmationEmail") or (body.get("userAccount") or {}).get("email")
        action, score = _ANSWERS[scripted_decision(email)]
        return web.json_response(
            {
                "signifydId": next(self._ids),
                "checkoutId": body["checkoutId"],
                "orderId": body["orderId"],
                "decision": {
                    "createdAt": purchase["createdAt"],
                    "checkpointAction": action,
                    "checkpointActionReason": f"fake {action.lower()}",
                    "score": score,
                },
                "coverage": None,
            },
            status=201,
        )

    async def _transactions(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        transactions = body.get("transactions")
        if not body.get("checkoutId") or not isinstance(transactions, list) or not transactions:
            return _bad({"transactions": ["checkoutId and at least one transaction are required"]})
        for t in transactions:
            if not t.get("transactionId") or t.get("gatewayStatusCode") not in (
                "SUCCESS",
                "FAILURE",
                "PENDING",
            ):
                return _bad({"transactions": ["transactionId and gatewayStatusCode are required"]})
            amount_error = _amount_error(t.get("amount"), t.get("currency"))
            if amount_error:
                return _bad({"transactions.amount": [amount_error]})
        self.record(request, body)
        return web.json_response({"signifydId": next(self._ids), "orderId": body["orderId"]}, status=201)

    async def _chargebacks(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        chargeback = body.get("chargeback") or {}
        amount = chargeback.get("amount") or {}
        if not body.get("chargebackId"):
            return _bad({"chargebackId": ["must not be empty"]})
        amount_error = _amount_error(amount.get("amount"), amount.get("currencyCode"))
        if amount_error:
            return _bad({"chargeback.amount": [amount_error]})
        if any(b["chargebackId"] == body["chargebackId"] for b in self.bodies(request.path)):
            return _bad({"chargebackId": ["duplicate chargeback"]})  # Signifyd rejects duplicates
        self.record(request, body)
        return web.json_response({"signifydId": next(self._ids), "orderId": body["orderId"]}, status=201)
