"""A fake Airwallex on 127.0.0.1: the login endpoint and bearer tokens, stateful Payment Intents
and Refunds, a 3-D Secure page, signed webhooks and fault knobs.

It checks what Airwallex checks: the client id and API key at login, an unexpired bearer token on
every other call (401 otherwise), required fields, amounts as decimal numbers with no more places
than the currency's minor unit, and `request_id` idempotency: a repeated `request_id` with the same
body answers the first outcome, with another body it is refused (`duplicate_request`).

Test cards are payment method ids: `mtd_card_success`, `mtd_card_declined`, `mtd_card_3ds` (always
asks for 3-D Secure); `three_ds_action: FORCE_3DS` makes any good card ask too. Fault knobs come from
`activities.gateways.fake_server` (operation names: login, create, confirm, capture, cancel,
retrieve, list, refund, refund_retrieve, refund_list).
"""

from __future__ import annotations

import itertools
import json
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from aiohttp import web

from activities.gateways.airwallex.transform import decode, encode
from activities.gateways.fake_server import FakeServer, FaultPlan
from activities.gateways.signing import hmac_sha256_hex
from workflows.money import MoneyError, exponent, is_known_currency

CARD_SUCCESS = "mtd_card_success"
CARD_DECLINED = "mtd_card_declined"
CARD_3DS = "mtd_card_3ds"
_CARDS = (CARD_SUCCESS, CARD_DECLINED, CARD_3DS)


@dataclass
class Recorded:
    """One authenticated request as the fake received it."""

    operation: str
    path: str
    body: dict[str, Any]
    replayed: bool = False


@dataclass
class Intent:
    id: str
    request_id: str
    amount: Decimal
    currency: str
    merchant_order_id: str
    metadata: dict[str, str]
    return_url: str | None
    status: str = "REQUIRES_PAYMENT_METHOD"
    captured_amount: Decimal = Decimal(0)
    auto_capture: bool = True
    attempt: dict[str, Any] | None = None
    next_action: dict[str, Any] | None = None
    cancellation_reason: str | None = None
    created_at: str = ""


@dataclass
class Refund:
    id: str
    request_id: str
    payment_intent_id: str
    amount: Decimal
    currency: str
    metadata: dict[str, str]
    reason: str | None
    status: str
    created_at: str = ""
    failure_reason: str | None = None


@dataclass
class _Saved:
    body: dict[str, Any]
    status: int
    answer: bytes


@dataclass
class _Token:
    expires_at: float
    revoked: bool = False


class FakeAirwallex(FakeServer):
    def __init__(self, *, token_ttl_seconds: float = 1800) -> None:
        super().__init__()
        self.client_id = "fake_client_" + secrets.token_hex(4)
        self.api_key = "fake_key_" + secrets.token_hex(16)
        self.webhook_secret = "whsec_" + secrets.token_hex(16)
        self.token_ttl_seconds = token_ttl_seconds
        self.intents: dict[str, Intent] = {}
        self.refunds: dict[str, Refund] = {}
        self.events: list[dict[str, Any]] = []
        self.requests: list[Recorded] = []
        self.logins = 0
        self.faults = FaultPlan()
        self.refund_outcome: Literal["ACCEPTED", "RECEIVED"] = "ACCEPTED"
        self._tokens: dict[str, _Token] = {}
        self._saved: dict[tuple[str, str], _Saved] = {}
        self._ids = itertools.count(1)
        base = "/api/v1/pa"
        self.app.router.add_post("/api/v1/authentication/login", self._login)
        self.app.router.add_post(f"{base}/payment_intents/create", self._create)
        self.app.router.add_get(f"{base}/payment_intents", self._list_intents)
        self.app.router.add_get(f"{base}/payment_intents/{{id}}", self._retrieve)
        self.app.router.add_post(f"{base}/payment_intents/{{id}}/confirm", self._confirm)
        self.app.router.add_post(f"{base}/payment_intents/{{id}}/capture", self._capture)
        self.app.router.add_post(f"{base}/payment_intents/{{id}}/cancel", self._cancel)
        self.app.router.add_post(f"{base}/refunds/create", self._refund)
        self.app.router.add_get(f"{base}/refunds", self._list_refunds)
        self.app.router.add_get(f"{base}/refunds/{{id}}", self._retrieve_refund)
        self.app.router.add_get("/3ds/{id}", self._three_ds_page)

    async def __aenter__(self) -> FakeAirwallex:
        await self.start()
        return self

    # -------------------------------------------------------------- configuration for the adapter

    def gateway_section(self, **overrides: Any) -> dict[str, Any]:
        """The raw `[payment.airwallex]` config section for a gateway pointed at this fake."""
        return {
            "enabled": True,
            "client_id": self.client_id,
            "api_key": self.api_key,
            "webhook_secret": self.webhook_secret,
            "api_base": self.base_url,
            "currencies": ["USD", "EUR", "JPY"],
            **overrides,
        }

    def revoke_tokens(self) -> None:
        """Airwallex ends every token before its time (a key rotated): the next call gets a 401."""
        for token in self._tokens.values():
            token.revoked = True

    # -------------------------------------------------------------- the customer and Airwallex's side

    def intents_for(self, payment_id: str) -> list[Intent]:
        return [i for i in self.intents.values() if i.merchant_order_id == payment_id]

    def refunds_for(self, payment_id: str) -> list[Refund]:
        intents = {i.id for i in self.intents_for(payment_id)}
        return [r for r in self.refunds.values() if r.payment_intent_id in intents]

    def posts(self, operation: str) -> list[Recorded]:
        return [r for r in self.requests if r.operation == operation]

    def complete_three_ds(self, intent_id: str) -> Intent:
        """The customer passes the 3-D Secure challenge: the attempt is authorized (and captured
        where the confirm asked for it). ValueError when the intent no longer waits for it."""
        intent = self.intents[intent_id]
        if intent.status != "REQUIRES_CUSTOMER_ACTION":
            raise ValueError(f"intent {intent_id} does not wait for 3-D Secure ({intent.status})")
        intent.next_action = None
        self._authorized(intent)
        return intent

    def settle_refund(self, refund_id: str, status: Literal["SETTLED", "FAILED"] = "SETTLED") -> Refund:
        refund = self.refunds[refund_id]
        refund.status = status
        if status == "FAILED":
            refund.failure_reason = "card_closed"
        self._event(f"refund.{status.lower()}", self._refund_json(refund))
        return refund

    def open_dispute(self, intent_id: str, *, reason: str = "fraudulent") -> dict[str, Any]:
        intent = self.intents[intent_id]
        dispute = {
            "id": f"dsp_{secrets.token_hex(8)}",
            "payment_intent_id": intent.id,
            "merchant_order_id": intent.merchant_order_id,
            "amount": intent.captured_amount,
            "currency": intent.currency,
            "status": "REQUIRES_RESPONSE",
            "reason": {"type": reason},
        }
        return self._event("payment_dispute.requires_response", dispute)

    def close_dispute(self, dispute: dict[str, Any], status: str = "WON") -> dict[str, Any]:
        return self._event(f"payment_dispute.{status.lower()}", {**dispute, "status": status})

    # -------------------------------------------------------------- webhooks

    def events_of(self, name: str, payment_id: str | None = None) -> list[dict[str, Any]]:
        return [
            e
            for e in self.events
            if e["name"] == name
            and (payment_id is None or _payment_of(e["data"]["object"], self.intents) == payment_id)
        ]

    def delivery(
        self, event: dict[str, Any], *, timestamp_ms: int | None = None, secret: str | None = None
    ) -> tuple[dict[str, str], bytes]:
        """Headers and raw body of `event` as Airwallex posts it, signed at `timestamp_ms` (now)."""
        body = encode(event)
        stamp = str(timestamp_ms if timestamp_ms is not None else int(time.time() * 1000))
        signature = hmac_sha256_hex(secret or self.webhook_secret, stamp.encode() + body)
        return {"Content-Type": "application/json", "x-timestamp": stamp, "x-signature": signature}, body

    def _event(self, name: str, obj: dict[str, Any]) -> dict[str, Any]:
        event = {
            "id": f"evt_{uuid.uuid4().hex}",
            "name": name,
            "account_id": "acct_fake",
            "created_at": _now(),
            "version": "2024-06-14",
            "data": {"object": obj},
        }
        self.events.append(event)
        return event

    # -------------------------------------------------------------- HTTP handlers

    async def _login(self, request: web.Request) -> web.StreamResponse:
        async def work() -> web.StreamResponse:
            if (
                request.headers.get("x-client-id") != self.client_id
                or request.headers.get("x-api-key") != self.api_key
            ):
                return _error(401, "credentials_invalid", "Invalid client id or API key")
            self.logins += 1
            token = secrets.token_urlsafe(32)
            expires = time.time() + self.token_ttl_seconds
            self._tokens[token] = _Token(expires_at=expires)
            stamp = datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%dT%H:%M:%S%z")
            return _json(201, {"token": token, "expires_at": stamp})

        return await self.faults.run(request, "login", work, _fault_error)

    async def _create(self, request: web.Request) -> web.StreamResponse:
        async def work(body: dict[str, Any]) -> web.StreamResponse:
            missing = [k for k in ("request_id", "amount", "currency", "merchant_order_id") if k not in body]
            if missing:
                return _error(400, "validation_error", f"missing {', '.join(missing)}")
            problem = _amount_problem(body["amount"], body["currency"])
            if problem:
                return _error(400, "validation_error", problem)
            intent = Intent(
                id=f"int_{secrets.token_hex(10)}",
                request_id=body["request_id"],
                amount=Decimal(body["amount"]),
                currency=body["currency"],
                merchant_order_id=str(body["merchant_order_id"]),
                metadata=dict(body.get("metadata") or {}),
                return_url=body.get("return_url"),
                created_at=_now(),
            )
            self.intents[intent.id] = intent
            return _json(201, self._intent_json(intent))

        return await self._mutating(request, "create", work)

    async def _confirm(self, request: web.Request) -> web.StreamResponse:
        async def work(body: dict[str, Any]) -> web.StreamResponse:
            intent = self.intents.get(request.match_info["id"])
            if intent is None:
                return _error(404, "resource_not_found", "The PaymentIntent does not exist")
            if "request_id" not in body or not isinstance(body.get("payment_method"), dict):
                return _error(400, "validation_error", "missing request_id or payment_method")
            if intent.status != "REQUIRES_PAYMENT_METHOD":
                return _error(400, "invalid_status_for_operation", f"The PaymentIntent is {intent.status}")
            card = body["payment_method"].get("id")
            if card not in _CARDS:
                return _error(400, "resource_not_found", "The payment method does not exist")
            options = (body.get("payment_method_options") or {}).get("card") or {}
            intent.auto_capture = options.get("auto_capture", True) is not False
            if body.get("return_url"):
                intent.return_url = body["return_url"]
            intent.attempt = {
                "id": f"att_{secrets.token_hex(8)}",
                "payment_intent_id": intent.id,
                "merchant_order_id": intent.merchant_order_id,
                "amount": intent.amount,
                "currency": intent.currency,
                "status": "RECEIVED",
            }
            if card == CARD_DECLINED:
                intent.attempt.update(
                    status="FAILED",
                    failure_code="issuer_declined",
                    failure_message="The card issuer declined",
                )
                self._event("payment_attempt.authorization_failed", dict(intent.attempt))
            elif card == CARD_3DS or options.get("three_ds_action") == "FORCE_3DS":
                intent.status = "REQUIRES_CUSTOMER_ACTION"
                intent.attempt["status"] = "AUTHENTICATION_REDIRECTED"
                intent.next_action = {
                    "type": "redirect",
                    "method": "GET",
                    "url": f"{self.base_url}/3ds/{intent.id}",
                }
                self._event("payment_intent.requires_customer_action", self._intent_json(intent))
            else:
                self._authorized(intent)
            return _json(200, self._intent_json(intent))

        return await self._mutating(request, "confirm", work)

    async def _capture(self, request: web.Request) -> web.StreamResponse:
        async def work(body: dict[str, Any]) -> web.StreamResponse:
            intent = self.intents.get(request.match_info["id"])
            if intent is None:
                return _error(404, "resource_not_found", "The PaymentIntent does not exist")
            if "request_id" not in body:
                return _error(400, "validation_error", "missing request_id")
            if intent.status != "REQUIRES_CAPTURE":
                return _error(400, "invalid_status_for_operation", f"The PaymentIntent is {intent.status}")
            amount = body.get("amount", intent.amount)
            problem = _amount_problem(amount, intent.currency)
            if problem:
                return _error(400, "validation_error", problem)
            if Decimal(amount) > intent.amount:
                return _error(400, "validation_error", "amount exceeds the authorized amount")
            intent.captured_amount = Decimal(amount)
            intent.status = "SUCCEEDED"
            assert intent.attempt is not None
            intent.attempt["status"] = "CAPTURE_REQUESTED"
            self._event("payment_intent.succeeded", self._intent_json(intent))
            return _json(200, self._intent_json(intent))

        return await self._mutating(request, "capture", work)

    async def _cancel(self, request: web.Request) -> web.StreamResponse:
        async def work(body: dict[str, Any]) -> web.StreamResponse:
            intent = self.intents.get(request.match_info["id"])
            if intent is None:
                return _error(404, "resource_not_found", "The PaymentIntent does not exist")
            if "request_id" not in body:
                return _error(400, "validation_error", "missing request_id")
            if intent.status not in (
                "REQUIRES_PAYMENT_METHOD",
                "REQUIRES_CUSTOMER_ACTION",
                "REQUIRES_CAPTURE",
            ):
                return _error(400, "invalid_status_for_operation", f"The PaymentIntent is {intent.status}")
            intent.status = "CANCELLED"
            intent.next_action = None
            intent.cancellation_reason = body.get("cancellation_reason")
            if intent.attempt is not None:
                intent.attempt["status"] = "CANCELLED"
            self._event("payment_intent.cancelled", self._intent_json(intent))
            return _json(200, self._intent_json(intent))

        return await self._mutating(request, "cancel", work)

    async def _retrieve(self, request: web.Request) -> web.StreamResponse:
        async def work(_: dict[str, Any]) -> web.StreamResponse:
            intent = self.intents.get(request.match_info["id"])
            if intent is None:
                return _error(404, "resource_not_found", "The PaymentIntent does not exist")
            return _json(200, self._intent_json(intent))

        return await self._authenticated(request, "retrieve", work)

    async def _list_intents(self, request: web.Request) -> web.StreamResponse:
        async def work(_: dict[str, Any]) -> web.StreamResponse:
            wanted = request.query.get("merchant_order_id")
            items = [
                self._intent_json(i) for i in self.intents.values() if wanted in (None, i.merchant_order_id)
            ]
            return _json(200, {"items": items, "has_more": False})

        return await self._authenticated(request, "list", work)

    async def _refund(self, request: web.Request) -> web.StreamResponse:
        async def work(body: dict[str, Any]) -> web.StreamResponse:
            if "request_id" not in body or not body.get("payment_intent_id"):
                return _error(400, "validation_error", "missing request_id or payment_intent_id")
            intent = self.intents.get(body["payment_intent_id"])
            if intent is None:
                return _error(404, "resource_not_found", "The PaymentIntent does not exist")
            if intent.status != "SUCCEEDED":
                return _error(400, "invalid_status_for_operation", f"The PaymentIntent is {intent.status}")
            left = intent.captured_amount - sum(
                (
                    r.amount
                    for r in self.refunds.values()
                    if r.payment_intent_id == intent.id and r.status != "FAILED"
                ),
                Decimal(0),
            )
            amount = body.get("amount", left)
            problem = _amount_problem(amount, intent.currency)
            if problem:
                return _error(400, "validation_error", problem)
            if Decimal(amount) > left:
                return _error(400, "refund_amount_exceeded", "The refund exceeds the amount left to refund")
            refund = Refund(
                id=f"rfd_{secrets.token_hex(10)}",
                request_id=body["request_id"],
                payment_intent_id=intent.id,
                amount=Decimal(amount),
                currency=intent.currency,
                metadata=dict(body.get("metadata") or {}),
                reason=body.get("reason"),
                status=self.refund_outcome,
                created_at=_now(),
            )
            self.refunds[refund.id] = refund
            self._event(f"refund.{refund.status.lower()}", self._refund_json(refund))
            return _json(201, self._refund_json(refund))

        return await self._mutating(request, "refund", work)

    async def _retrieve_refund(self, request: web.Request) -> web.StreamResponse:
        async def work(_: dict[str, Any]) -> web.StreamResponse:
            refund = self.refunds.get(request.match_info["id"])
            if refund is None:
                return _error(404, "resource_not_found", "The Refund does not exist")
            return _json(200, self._refund_json(refund))

        return await self._authenticated(request, "refund_retrieve", work)

    async def _list_refunds(self, request: web.Request) -> web.StreamResponse:
        async def work(_: dict[str, Any]) -> web.StreamResponse:
            wanted = request.query.get("payment_intent_id")
            items = [
                self._refund_json(r) for r in self.refunds.values() if wanted in (None, r.payment_intent_id)
            ]
            return _json(200, {"items": items, "has_more": False})

        return await self._authenticated(request, "refund_list", work)

    async def _three_ds_page(self, request: web.Request) -> web.StreamResponse:
        """The issuer's challenge page, passed by the customer's browser: back to the shop's return URL."""
        intent_id = request.match_info["id"]
        if intent_id not in self.intents:
            return web.Response(status=404, text="unknown payment")
        try:
            intent = self.complete_three_ds(intent_id)
        except ValueError as exc:
            return web.Response(status=400, text=str(exc))
        if not intent.return_url:
            return web.Response(status=200, text="authenticated")
        raise web.HTTPFound(f"{intent.return_url}?payment_intent_id={intent.id}")

    # -------------------------------------------------------------- authentication and idempotency

    async def _authenticated(
        self,
        request: web.Request,
        operation: str,
        work: Callable[[dict[str, Any]], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        raw = await request.read()
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        known = self._tokens.get(token)
        if scheme != "Bearer" or known is None or known.revoked or known.expires_at <= time.time():
            return _error(401, "unauthorized", "Access token is missing, invalid or expired")
        try:
            body = decode(raw) if raw else {}
        except ValueError:
            return _error(400, "validation_error", "body is not JSON")
        if not isinstance(body, dict):
            return _error(400, "validation_error", "body is not a JSON object")
        self.requests.append(Recorded(operation, request.path, body))
        return await self.faults.run(request, operation, lambda: work(body), _fault_error)

    async def _mutating(
        self,
        request: web.Request,
        operation: str,
        work: Callable[[dict[str, Any]], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        """`_authenticated`, with the first answer to a `request_id` saved and replayed."""

        async def once(body: dict[str, Any]) -> web.StreamResponse:
            request_id = body.get("request_id")
            if not isinstance(request_id, str) or not request_id or len(request_id) > 64:
                return _error(400, "validation_error", "request_id must be 1..64 characters")
            key = (f"{operation}:{request.path}", request_id)
            saved = self._saved.get(key)
            if saved is not None:
                if saved.body != body:
                    return _error(400, "duplicate_request", "The request_id was used with other parameters")
                self.requests[-1].replayed = True
                return web.Response(status=saved.status, body=saved.answer, content_type="application/json")
            response = await work(body)
            if isinstance(response, web.Response) and response.status < 500 and response.body is not None:
                assert isinstance(response.body, bytes)
                self._saved[key] = _Saved(body=body, status=response.status, answer=response.body)
            return response

        return await self._authenticated(request, operation, once)

    # -------------------------------------------------------------- state

    def _authorized(self, intent: Intent) -> None:
        assert intent.attempt is not None
        if intent.auto_capture:
            intent.status = "SUCCEEDED"
            intent.captured_amount = intent.amount
            intent.attempt["status"] = "CAPTURE_REQUESTED"
            self._event("payment_intent.succeeded", self._intent_json(intent))
        else:
            intent.status = "REQUIRES_CAPTURE"
            intent.attempt["status"] = "AUTHORIZED"
            self._event("payment_intent.requires_capture", self._intent_json(intent))

    def _intent_json(self, intent: Intent) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": intent.id,
            "request_id": intent.request_id,
            "amount": intent.amount,
            "currency": intent.currency,
            "merchant_order_id": intent.merchant_order_id,
            "metadata": intent.metadata,
            "status": intent.status,
            "captured_amount": intent.captured_amount,
            "client_secret": f"{intent.id}_secret_{secrets.token_hex(4)}",
            "created_at": intent.created_at,
            "updated_at": _now(),
        }
        if intent.attempt is not None:
            data["latest_payment_attempt"] = dict(intent.attempt)
        if intent.next_action is not None:
            data["next_action"] = dict(intent.next_action)
        if intent.return_url:
            data["return_url"] = intent.return_url
        if intent.cancellation_reason:
            data["cancellation_reason"] = intent.cancellation_reason
        return data

    def _refund_json(self, refund: Refund) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": refund.id,
            "request_id": refund.request_id,
            "payment_intent_id": refund.payment_intent_id,
            "amount": refund.amount,
            "currency": refund.currency,
            "metadata": refund.metadata,
            "status": refund.status,
            "created_at": refund.created_at,
        }
        if refund.reason:
            data["reason"] = refund.reason
        if refund.failure_reason:
            data["failure_reason"] = refund.failure_reason
        return data


def _payment_of(obj: dict[str, Any], intents: dict[str, Intent]) -> str | None:
    if obj.get("merchant_order_id"):
        return str(obj["merchant_order_id"])
    intent = intents.get(obj.get("payment_intent_id", ""))
    return intent.merchant_order_id if intent else None


def _amount_problem(value: Any, currency: Any) -> str | None:
    """Airwallex's amount rule: a positive number (not a string) with at most the currency's places."""
    if not isinstance(currency, str) or not is_known_currency(currency) or currency != currency.upper():
        return f"unsupported currency {currency!r}"
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        return "amount must be a number"
    amount = Decimal(value)
    if amount <= 0:
        return "amount must be positive"
    try:
        places = exponent(currency)
    except MoneyError:
        return f"unsupported currency {currency!r}"
    if amount.scaleb(places) != amount.scaleb(places).to_integral_value():
        return f"amount has more decimal places than {currency} allows ({places})"
    return None


def _json(status: int, data: dict[str, Any]) -> web.Response:
    return web.Response(status=status, body=encode(data), content_type="application/json")


def _error(status: int, code: str, message: str) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps({"code": code, "message": message}).encode(),
        content_type="application/json",
    )


def _fault_error(status: int) -> web.Response:
    if status == 429:
        return _error(429, "too_many_requests", "Rate limit exceeded")
    return _error(status, "internal_error", "Something went wrong")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")
