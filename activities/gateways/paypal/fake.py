"""A fake PayPal REST API (v2 Orders / Payments, OAuth2, webhook verification) on 127.0.0.1.

It checks what PayPal checks: Basic auth of the client id / secret for a token and that bearer
token afterwards, required fields, PayPal's money objects (a decimal string with the currency's
places, none for HUF / JPY / TWD), `PayPal-Request-Id` (a repeat answers the original's current
state), the payer's approval before a capture or authorization (ORDER_NOT_APPROVED), amounts left
to capture or refund, and `verify-webhook-signature`, which recomputes the signature of the event
bytes it is given against its own certificate. Its approval page (`/checkoutnow`) is what the
payer's browser opens.

It runs on a thread of its own: the adapter verifies webhooks with a blocking call, which must not
wait for the very event loop that would answer it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from activities.gateways.fake_server import FakeServer, FaultPlan, certificate, keypair
from activities.gateways.paypal.webhooks import AUTH_ALGO, signed_message
from activities.gateways.signing import rsa_sha256_sign, rsa_sha256_verify

DEFAULT_CLIENT_ID = "fake-paypal-client"
DEFAULT_CLIENT_SECRET = "fake-paypal-secret-do-not-use"
DEFAULT_WEBHOOK_ID = "WH-FAKE-0001"
_KEY_SLOT = "paypal"

# PayPal's currency-code list: HUF, JPY and TWD take no decimals, the others two.
PAYPAL_CURRENCIES = frozenset(
    [
        "AUD",
        "BRL",
        "CAD",
        "CNY",
        "CZK",
        "DKK",
        "EUR",
        "HKD",
        "HUF",
        "ILS",
        "JPY",
        "MYR",
        "MXN",
        "TWD",
        "NZD",
        "NOK",
        "PHP",
        "PLN",
        "GBP",
        "SGD",
        "SEK",
        "CHF",
        "THB",
        "USD",
    ]
)
WHOLE_UNITS = frozenset({"HUF", "JPY", "TWD"})
_VALUE = re.compile(r"^\d{1,10}(\.\d+)?$")
ORDER_TTL_SECONDS = 3 * 3600  # an order never approved expires
_PATCHABLE = frozenset({"custom_id", "invoice_id", "description", "soft_descriptor"})


class PayPalError(Exception):
    def __init__(self, status: int, name: str, issue: str, description: str) -> None:
        super().__init__(description)
        self.status, self.name, self.issue, self.description = status, name, issue, description

    def response(self) -> web.Response:
        return _error(self.status, self.name, self.issue, self.description)


def _error(status: int, name: str, issue: str, description: str) -> web.Response:
    body = {
        "name": name,
        "message": description,
        "debug_id": uuid.uuid4().hex[:13],
        "details": [{"issue": issue, "description": description}],
    }
    return web.json_response(body, status=status)


def _unprocessable(issue: str, description: str) -> PayPalError:
    return PayPalError(422, "UNPROCESSABLE_ENTITY", issue, description)


def _invalid(issue: str, description: str) -> PayPalError:
    return PayPalError(400, "INVALID_REQUEST", issue, description)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _id(prefix: str = "") -> str:
    return (prefix + uuid.uuid4().hex.upper())[:17]


def parse_money(value: Any, field: str = "amount") -> Decimal:
    """A PayPal money object read with PayPal's rules; raises the error PayPal answers."""
    if not isinstance(value, dict) or not value.get("currency_code") or "value" not in value:
        raise _invalid("MISSING_REQUIRED_PARAMETER", f"{field} needs currency_code and value")
    currency, text = value["currency_code"], value["value"]
    if currency not in PAYPAL_CURRENCIES:
        raise _unprocessable("CURRENCY_NOT_SUPPORTED", f"{currency!r} is not supported")
    if not isinstance(text, str) or not _VALUE.match(text):
        raise _invalid("INVALID_PARAMETER_SYNTAX", f"{field}.value must be a decimal string, not {text!r}")
    decimals = len(text.partition(".")[2])
    if currency in WHOLE_UNITS and decimals:
        raise _unprocessable("DECIMALS_NOT_SUPPORTED", f"{currency} does not support decimals")
    if decimals > 2:
        raise _unprocessable("DECIMAL_PRECISION", f"{field}.value has more than two decimals")
    amount = Decimal(text)
    if amount <= 0:
        raise _unprocessable("AMOUNT_MUST_BE_POSITIVE", f"{field}.value must be positive")
    return amount


def _money(amount: Decimal, currency: str) -> dict[str, str]:
    places = Decimal(1) if currency in WHOLE_UNITS else Decimal("0.01")
    return {"currency_code": currency, "value": str(amount.quantize(places))}


def top_level_spans(raw: bytes) -> dict[str, bytes]:
    """The raw bytes of each member of a JSON object, as sent (PayPal verifies the event exactly as
    received, so its bytes must not go through a parse and a re-serialization)."""
    text = raw.decode()
    decoder = json.JSONDecoder()
    spans: dict[str, bytes] = {}
    i = len(text) - len(text.lstrip())
    if text[i : i + 1] != "{":
        raise ValueError("not a JSON object")
    i += 1
    while True:
        while text[i].isspace() or text[i] == ",":
            i += 1
        if text[i] == "}":
            return spans
        key, i = decoder.raw_decode(text, i)
        while text[i].isspace():
            i += 1
        if text[i] != ":":
            raise ValueError("expected ':'")
        i += 1
        while text[i].isspace():
            i += 1
        _, end = decoder.raw_decode(text, i)
        spans[key] = text[i:end].encode()
        i = end


class FakePayPal:
    def __init__(
        self,
        *,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        webhook_id: str = DEFAULT_WEBHOOK_ID,
        order_ttl_seconds: float = ORDER_TTL_SECONDS,
    ) -> None:
        self.client_id, self.client_secret, self.webhook_id = client_id, client_secret, webhook_id
        self.order_ttl_seconds = order_ttl_seconds
        self.faults = FaultPlan()
        self.orders: dict[str, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.token_requests = 0
        # Every mutating call: (path, PayPal-Request-Id, answered from an earlier request).
        self.requests: list[tuple[str, str | None, bool]] = []
        self._tokens: dict[str, float] = {}  # bearer token -> expiry (monotonic)
        self._owner: dict[str, str] = {}  # authorization / capture / refund id -> order id
        self._requests: dict[tuple[str, str], tuple[int, Callable[[], Any]]] = {}
        self._lock = threading.RLock()  # the kit reads what the server thread writes
        self._server = FakeServer()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._routes(self._server.app)

    # -- lifecycle -------------------------------------------------------------------------------

    def _routes(self, app: web.Application) -> None:
        app.middlewares.append(self._middleware)
        app.router.add_post("/v1/oauth2/token", self._token)
        app.router.add_post("/v2/checkout/orders", self._create_order)
        app.router.add_get("/v2/checkout/orders/{id}", self._get_order)
        app.router.add_patch("/v2/checkout/orders/{id}", self._patch_order)
        app.router.add_post("/v2/checkout/orders/{id}/capture", self._capture_order)
        app.router.add_post("/v2/checkout/orders/{id}/authorize", self._authorize_order)
        app.router.add_post("/v2/payments/authorizations/{id}/capture", self._capture_authorization)
        app.router.add_post("/v2/payments/authorizations/{id}/void", self._void_authorization)
        app.router.add_post("/v2/payments/captures/{id}/refund", self._refund_capture)
        app.router.add_get("/v2/payments/refunds/{id}", self._get_refund)
        app.router.add_post("/v1/notifications/verify-webhook-signature", self._verify_signature)
        app.router.add_get("/checkoutnow", self._approval_page)
        app.router.add_get("/certs/paypal.pem", self._certificate)

    async def start(self) -> FakePayPal:
        loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=loop.run_forever, name="fake-paypal", daemon=True)
        self._thread.start()
        self._loop = loop
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._server.start(), loop))
        return self

    async def stop(self) -> None:
        loop, self._loop = self._loop, None
        if loop is None:
            return
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._server.stop(), loop))
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 5)

    async def __aenter__(self) -> FakePayPal:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        return self._server.base_url

    @property
    def cert_url(self) -> str:
        return f"{self.url}/certs/paypal.pem"

    def gateway_section(self, **overrides: Any) -> dict[str, Any]:
        """A `[payment.paypal]` section pointing at this fake."""
        return {
            "enabled": True,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "webhook_id": self.webhook_id,
            "api_base": self.url,
            "currencies": ["USD", "EUR", "JPY"],
            **overrides,
        }

    # -- knobs -----------------------------------------------------------------------------------

    def expire_tokens(self) -> None:
        """Every token issued so far stops working (PayPal's answer then is 401)."""
        with self._lock:
            self._tokens.clear()

    def age_order(self, order_id: str, seconds: float) -> None:
        """The order was created `seconds` earlier (past its expiry, when more than its TTL)."""
        with self._lock:
            self.orders[order_id]["_created"] -= seconds

    # -- what the payer's browser does -----------------------------------------------------------

    def approval_url(self, order_id: str, *, funding: str = "balance") -> str:
        return f"{self.url}/checkoutnow?{urlencode({'token': order_id, 'funding': funding})}"

    # -- reading the books (for tests and the kit) -----------------------------------------------

    def orders_for(self, payment_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [
                json.loads(json.dumps(self._render(o)))
                for o in self.orders.values()
                if payment_id
                in (o["purchase_units"][0].get("invoice_id"), o["purchase_units"][0].get("custom_id"))
            ]

    def events_of(self, event_type: str) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.events if e["event_type"] == event_type]

    # -- signed notifications --------------------------------------------------------------------

    def sign(self, event: dict[str, Any], *, timestamp: int | None = None) -> tuple[dict[str, str], bytes]:
        """The delivery of `event` as PayPal posts it: compact JSON and its transmission headers."""
        body = json.dumps(event, separators=(",", ":")).encode()
        transmission_id = str(uuid.uuid1())
        at = datetime.fromtimestamp(timestamp if timestamp is not None else time.time(), UTC)
        transmission_time = at.strftime("%Y-%m-%dT%H:%M:%SZ")
        message = signed_message(transmission_id, transmission_time, self.webhook_id, body)
        headers = {
            "Content-Type": "application/json",
            "PAYPAL-TRANSMISSION-ID": transmission_id,
            "PAYPAL-TRANSMISSION-TIME": transmission_time,
            "PAYPAL-TRANSMISSION-SIG": rsa_sha256_sign(keypair(_KEY_SLOT)[0], message),
            "PAYPAL-CERT-URL": self.cert_url,
            "PAYPAL-AUTH-ALGO": AUTH_ALGO,
            "PAYPAL-AUTH-VERSION": "v2",
        }
        return headers, body

    def event(self, event_type: str, resource: dict[str, Any], resource_type: str) -> dict[str, Any]:
        """A PayPal event envelope (recorded like the ones the fake emits itself)."""
        event = {
            "id": f"WH-{uuid.uuid4().hex[:17].upper()}",
            "event_version": "1.0",
            "create_time": _now(),
            "resource_type": resource_type,
            "resource_version": "2.0",
            "event_type": event_type,
            "summary": event_type.replace(".", " ").lower(),
            "resource": json.loads(json.dumps(resource)),
        }
        with self._lock:
            self.events.append(event)
        return event

    # -- the wire --------------------------------------------------------------------------------

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[Any]]
    ) -> Any:
        path = request.path
        if path not in ("/checkoutnow", "/certs/paypal.pem"):
            auth = request.headers.get("Authorization", "")
            if path == "/v1/oauth2/token":
                expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
                if auth != f"Basic {expected}":
                    return web.json_response(
                        {"error": "invalid_client", "error_description": "Client Authentication failed"},
                        status=401,
                    )
            else:
                token = auth.removeprefix("Bearer ")
                with self._lock:
                    expiry = self._tokens.get(token) if auth.startswith("Bearer ") else None
                if expiry is None or expiry < time.monotonic():
                    return _error(401, "AUTHENTICATION_FAILURE", "INVALID_TOKEN", "Access token is invalid")

        await request.read()  # whole, before the lock: the kit's thread may be the one sending it

        async def work() -> web.StreamResponse:
            try:
                with self._lock:
                    return await handler(request)
            except PayPalError as exc:
                return exc.response()

        return await self.faults.run(
            request,
            f"{request.method} {path}",
            work,
            lambda status: _error(status, "INTERNAL_SERVER_ERROR", "", "fault"),
        )

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("grant_type") != "client_credentials":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        token = f"A21AA{uuid.uuid4().hex}"
        self._tokens[token] = time.monotonic() + 32_400
        self.token_requests += 1
        return web.json_response(
            {
                "scope": "https://uri.paypal.com/services/payments",
                "access_token": token,
                "token_type": "Bearer",
                "app_id": "APP-FAKE",
                "expires_in": 32_400,
                "nonce": uuid.uuid4().hex,
            }
        )

    async def _json(self, request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        if not raw:
            return {}
        if request.content_type != "application/json":
            raise PayPalError(
                415, "UNSUPPORTED_MEDIA_TYPE", "UNSUPPORTED_MEDIA_TYPE", "send application/json"
            )
        try:
            body = json.loads(raw)
        except ValueError:
            raise _invalid("MALFORMED_REQUEST_JSON", "the body is not JSON") from None
        if not isinstance(body, dict):
            raise _invalid("MALFORMED_REQUEST_JSON", "the body is not a JSON object")
        return body

    async def _idempotent(
        self, request: web.Request, work: Callable[[dict[str, Any]], Awaitable[tuple[int, Callable[[], Any]]]]
    ) -> web.Response:
        """Run `work` once per PayPal-Request-Id; a repeat answers the original's current state."""
        body = await self._json(request)
        request_id = request.headers.get("PayPal-Request-Id")
        key = (request.path, request_id) if request_id else None
        self.requests.append((request.path, request_id, key in self._requests))
        if key is not None and key in self._requests:
            status, render = self._requests[key]
            return self._answer(status if status == 204 else 200, render())
        status, render = await work(body)
        if key is not None:
            self._requests[key] = (status, render)
        return self._answer(status, render())

    @staticmethod
    def _answer(status: int, body: Any) -> web.Response:
        return web.Response(status=204) if status == 204 else web.json_response(body, status=status)

    # -- orders ----------------------------------------------------------------------------------

    async def _create_order(self, request: web.Request) -> web.Response:
        async def work(body: dict[str, Any]) -> tuple[int, Callable[[], Any]]:
            intent = body.get("intent")
            if intent not in ("CAPTURE", "AUTHORIZE"):
                raise _invalid("INVALID_PARAMETER_VALUE", "intent must be CAPTURE or AUTHORIZE")
            units = body.get("purchase_units")
            if not isinstance(units, list) or len(units) != 1:
                raise _invalid("MISSING_REQUIRED_PARAMETER", "one purchase unit is required here")
            unit = dict(units[0])
            amount = parse_money(unit.get("amount"), "purchase_units[0].amount")
            for name in ("custom_id", "invoice_id"):
                if len(str(unit.get(name) or "")) > 127:
                    raise _invalid("INVALID_STRING_LENGTH", f"{name} is longer than 127")
            invoice = unit.get("invoice_id")
            if invoice and any(
                o["purchase_units"][0].get("invoice_id") == invoice for o in self.orders.values()
            ):
                raise _unprocessable("DUPLICATE_INVOICE_ID", "the invoice id was used before")
            currency = unit["amount"]["currency_code"]
            unit["amount"] = _money(amount, currency)
            context = ((body.get("payment_source") or {}).get("paypal") or {}).get("experience_context") or {}
            order_id = _id()
            self.orders[order_id] = {
                "id": order_id,
                "intent": intent,
                "status": "PAYER_ACTION_REQUIRED",
                "purchase_units": [unit],
                "create_time": _now(),
                "_created": time.time(),
                "_return_url": context.get("return_url"),
                "_funding": None,
            }
            return 201, lambda: self._render(self.orders[order_id])

        return await self._idempotent(request, work)

    def _order(self, order_id: str) -> dict[str, Any]:
        order = self.orders.get(order_id)
        if order is None:
            raise PayPalError(404, "RESOURCE_NOT_FOUND", "INVALID_RESOURCE_ID", "order not found")
        return order

    def _render(self, order: dict[str, Any]) -> dict[str, Any]:
        rendered = {k: v for k, v in order.items() if not k.startswith("_")}
        links = [{"href": f"{self.url}/v2/checkout/orders/{order['id']}", "rel": "self", "method": "GET"}]
        if order["status"] == "PAYER_ACTION_REQUIRED":
            links.append(
                {"href": self.approval_url(order["id"]).split("&")[0], "rel": "payer-action", "method": "GET"}
            )
        rendered["links"] = links
        return rendered

    async def _get_order(self, request: web.Request) -> web.Response:
        return web.json_response(self._render(self._order(request.match_info["id"])))

    async def _patch_order(self, request: web.Request) -> web.Response:
        order = self._order(request.match_info["id"])
        try:
            ops = json.loads(await request.read())
        except ValueError:
            raise _invalid("MALFORMED_REQUEST_JSON", "the body is not JSON") from None
        if not isinstance(ops, list) or not ops:
            raise _invalid("MALFORMED_REQUEST_JSON", "a JSON Patch array is required")
        if order["status"] not in ("CREATED", "PAYER_ACTION_REQUIRED", "APPROVED"):
            raise _unprocessable("ORDER_ALREADY_COMPLETED", f"the order is {order['status']}")
        unit = order["purchase_units"][0]
        for op in ops:
            prefix = "/purchase_units/@reference_id=='default'/"
            path = op.get("path", "") if isinstance(op, dict) else ""
            field = path.removeprefix(prefix)
            if (
                op.get("op") not in ("replace", "add")
                or not path.startswith(prefix)
                or field not in _PATCHABLE
            ):
                raise _unprocessable("INVALID_PATCH_OPERATION", f"cannot patch {path!r}")
            if len(str(op.get("value") or "")) > 127:
                raise _invalid("INVALID_STRING_LENGTH", f"{field} is longer than 127")
            unit[field] = op.get("value")
        return web.Response(status=204)

    def _approved(self, order: dict[str, Any], intent: str) -> None:
        if order["intent"] != intent:
            raise _unprocessable("ACTION_DOES_NOT_MATCH_INTENT", f"the order's intent is {order['intent']}")
        if order["status"] == "COMPLETED":
            issue = "ORDER_ALREADY_CAPTURED" if intent == "CAPTURE" else "ORDER_ALREADY_AUTHORIZED"
            raise _unprocessable(issue, "the order is completed")
        if order["status"] != "APPROVED":
            raise _unprocessable("ORDER_NOT_APPROVED", "the payer has not approved the order")

    def _related(self, order: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
        unit = order["purchase_units"][0]
        item.update({"custom_id": unit.get("custom_id"), "invoice_id": unit.get("invoice_id")})
        item["supplementary_data"] = {"related_ids": {"order_id": order["id"]}}
        item["create_time"] = item["update_time"] = _now()
        return item

    def _payments(self, order: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
        return order["purchase_units"][0].setdefault("payments", {})

    def _new_capture(self, order: dict[str, Any], amount: dict[str, str], *, final: bool) -> dict[str, Any]:
        declined = order["_funding"] == "declined"
        capture = self._related(
            order,
            {
                "id": _id("C"),
                "status": "DECLINED" if declined else "COMPLETED",
                "amount": amount,
                "final_capture": final,
            },
        )
        if declined:
            capture["status_details"] = {"reason": "DECLINED_BY_RISK_FRAUD_FILTERS"}
        self._payments(order).setdefault("captures", []).append(capture)
        self._owner[capture["id"]] = order["id"]
        self.event("PAYMENT.CAPTURE.DENIED" if declined else "PAYMENT.CAPTURE.COMPLETED", capture, "capture")
        return capture

    async def _capture_order(self, request: web.Request) -> web.Response:
        async def work(body: dict[str, Any]) -> tuple[int, Callable[[], Any]]:
            order = self._order(request.match_info["id"])
            self._approved(order, "CAPTURE")
            self._new_capture(order, order["purchase_units"][0]["amount"], final=True)
            order["status"] = "COMPLETED"
            return 201, lambda: self._render(order)

        return await self._idempotent(request, work)

    async def _authorize_order(self, request: web.Request) -> web.Response:
        async def work(body: dict[str, Any]) -> tuple[int, Callable[[], Any]]:
            order = self._order(request.match_info["id"])
            self._approved(order, "AUTHORIZE")
            denied = order["_funding"] == "declined"
            authorization = self._related(
                order,
                {
                    "id": _id("A"),
                    "status": "DENIED" if denied else "CREATED",
                    "amount": order["purchase_units"][0]["amount"],
                    "expiration_time": (datetime.now(UTC) + timedelta(days=29)).strftime(
                        "%Y-%m-%dT%H:%M:%SZ"
                    ),
                },
            )
            self._payments(order).setdefault("authorizations", []).append(authorization)
            self._owner[authorization["id"]] = order["id"]
            order["status"] = "COMPLETED"
            if not denied:
                self.event("PAYMENT.AUTHORIZATION.CREATED", authorization, "authorization")
            return 201, lambda: self._render(order)

        return await self._idempotent(request, work)

    def _find(self, kind: str, item_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
        order = self.orders.get(self._owner.get(item_id, ""))
        for item in self._payments(order).get(kind, []) if order else []:
            if item["id"] == item_id:
                return order, item  # type: ignore[return-value]
        raise PayPalError(404, "RESOURCE_NOT_FOUND", "INVALID_RESOURCE_ID", f"{kind[:-1]} not found")

    async def _capture_authorization(self, request: web.Request) -> web.Response:
        async def work(body: dict[str, Any]) -> tuple[int, Callable[[], Any]]:
            order, authorization = self._find("authorizations", request.match_info["id"])
            if authorization["status"] not in ("CREATED", "PARTIALLY_CAPTURED"):
                raise _unprocessable(
                    "AUTHORIZATION_ALREADY_CAPTURED"
                    if "CAPTURED" in authorization["status"]
                    else "AUTHORIZATION_VOIDED",
                    f"the authorization is {authorization['status']}",
                )
            held = parse_money(authorization["amount"])
            currency = authorization["amount"]["currency_code"]
            taken = sum(
                (
                    parse_money(c["amount"])
                    for c in self._payments(order).get("captures", [])
                    if c["status"] != "DECLINED"
                ),
                Decimal(0),
            )
            amount = parse_money(body["amount"]) if "amount" in body else held - taken
            if "amount" in body and body["amount"].get("currency_code") != currency:
                raise _unprocessable("CURRENCY_MISMATCH", "the capture's currency is not the authorization's")
            if amount > held - taken:
                raise _unprocessable("MAX_CAPTURE_AMOUNT_EXCEEDED", "more than is left of the authorization")
            final = bool(body.get("final_capture", False))
            capture = self._new_capture(order, _money(amount, currency), final=final)
            authorization["status"] = "CAPTURED" if final or amount == held - taken else "PARTIALLY_CAPTURED"
            return 201, lambda: dict(capture)

        return await self._idempotent(request, work)

    async def _void_authorization(self, request: web.Request) -> web.Response:
        async def work(body: dict[str, Any]) -> tuple[int, Callable[[], Any]]:
            _, authorization = self._find("authorizations", request.match_info["id"])
            if authorization["status"] != "CREATED":
                raise _unprocessable("CANNOT_BE_VOIDED", f"the authorization is {authorization['status']}")
            authorization["status"] = "VOIDED"
            self.event("PAYMENT.AUTHORIZATION.VOIDED", authorization, "authorization")
            return 204, lambda: None

        return await self._idempotent(request, work)

    async def _refund_capture(self, request: web.Request) -> web.Response:
        async def work(body: dict[str, Any]) -> tuple[int, Callable[[], Any]]:
            order, capture = self._find("captures", request.match_info["id"])
            if capture["status"] not in ("COMPLETED", "PARTIALLY_REFUNDED"):
                raise _unprocessable("CAPTURE_FULLY_REFUNDED", f"the capture is {capture['status']}")
            currency = capture["amount"]["currency_code"]
            refunds = self._payments(order).setdefault("refunds", [])
            mine = [r for r in refunds if r["_capture"] == capture["id"] and r["status"] == "COMPLETED"]
            left = parse_money(capture["amount"]) - sum((parse_money(r["amount"]) for r in mine), Decimal(0))
            amount = parse_money(body["amount"]) if "amount" in body else left
            if amount > left:
                raise _unprocessable("REFUND_AMOUNT_EXCEEDED", "the refund is more than what is left")
            refund = {
                "id": _id("R"),
                "status": "COMPLETED",
                "amount": _money(amount, currency),
                "custom_id": body.get("custom_id"),
                "invoice_id": body.get("invoice_id"),
                "note_to_payer": body.get("note_to_payer"),
                "create_time": _now(),
                "links": [
                    {"rel": "up", "href": f"{self.url}/v2/payments/captures/{capture['id']}", "method": "GET"}
                ],
                "_capture": capture["id"],
            }
            refunds.append(refund)
            self._owner[refund["id"]] = order["id"]
            capture["status"] = "REFUNDED" if amount == left else "PARTIALLY_REFUNDED"
            self.event("PAYMENT.CAPTURE.REFUNDED", _public(refund), "refund")
            return 201, lambda: _public(refund)

        return await self._idempotent(request, work)

    async def _get_refund(self, request: web.Request) -> web.Response:
        _, refund = self._find("refunds", request.match_info["id"])
        return web.json_response(_public(refund))

    # -- the payer -------------------------------------------------------------------------------

    async def _approval_page(self, request: web.Request) -> web.Response:
        order = self.orders.get(request.query.get("token", ""))
        if order is None:
            return web.Response(status=404, text="This checkout session does not exist.")
        if time.time() - order["_created"] > self.order_ttl_seconds:
            order["status"] = (
                "EXPIRED_SESSION" if order["status"] == "PAYER_ACTION_REQUIRED" else order["status"]
            )
        if order["status"] != "PAYER_ACTION_REQUIRED":
            return web.Response(status=410, text="This checkout session has expired or is complete.")
        order["status"] = "APPROVED"
        order["_funding"] = request.query.get("funding", "balance")
        order["payer"] = {"payer_id": _id("P"), "email_address": "buyer@example.com"}
        self.event("CHECKOUT.ORDER.APPROVED", self._render(order), "checkout-order")
        back = order["_return_url"]
        if not back:
            return web.Response(text="Payment approved. You may close this window.")
        separator = "&" if "?" in back else "?"
        raise web.HTTPFound(
            f"{back}{separator}{urlencode({'token': order['id'], 'PayerID': order['payer']['payer_id']})}"
        )

    async def _certificate(self, request: web.Request) -> web.Response:
        return web.Response(text=certificate(_KEY_SLOT), content_type="application/x-pem-file")

    # -- webhook verification --------------------------------------------------------------------

    async def _verify_signature(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            fields = json.loads(raw)
            spans = top_level_spans(raw)
        except (ValueError, IndexError):
            raise _invalid("MALFORMED_REQUEST_JSON", "the body is not JSON") from None
        required = (
            "auth_algo",
            "cert_url",
            "transmission_id",
            "transmission_sig",
            "transmission_time",
            "webhook_id",
        )
        missing = [name for name in (*required, "webhook_event") if not fields.get(name)]
        if missing:
            raise _invalid("MISSING_REQUIRED_PARAMETER", f"missing {', '.join(missing)}")
        verified = (
            fields["webhook_id"] == self.webhook_id
            and fields["auth_algo"] == AUTH_ALGO
            and fields["cert_url"] == self.cert_url  # the only certificate this PayPal signs with
            and rsa_sha256_verify(
                certificate(_KEY_SLOT),
                signed_message(
                    fields["transmission_id"],
                    fields["transmission_time"],
                    self.webhook_id,
                    spans["webhook_event"],
                ),
                fields["transmission_sig"],
            )
        )
        return web.json_response({"verification_status": "SUCCESS" if verified else "FAILURE"})


def _public(refund: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in refund.items() if not k.startswith("_")}
