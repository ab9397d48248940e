"""A fake Stripe API that the real `stripe` SDK talks to (through `api_base`), on 127.0.0.1.

It speaks Stripe's wire format: form-encoded request bodies with bracketed keys
(`metadata[durapay_payment_id]=...`), Bearer or Basic auth with the secret key, JSON objects, the
`{"error": {...}}` envelope (402 for card errors), and Stripe's idempotency rules: the same
`Idempotency-Key` with the same parameters replays the saved status and body; with other parameters
it is a 400 `idempotency_error`; while the first is still running, a 409. Results are saved only once
execution began (so a validation error or a 5xx before execution is not replayed).

State: PaymentIntents (create with confirm, confirm, capture, cancel, retrieve, search by metadata,
eventually consistent like Stripe's when `search_index_lag_seconds` is set),
charges (the ledger tests assert on: `charges_for(payment_id)`), refunds, customers, payment methods,
disputes, and the events each change emits, delivered signed to `webhook_url` when one is set.

Stripe's test payment methods are understood: `pm_card_visa`, `pm_card_mastercard`,
`pm_card_chargeDeclined`, `pm_card_chargeDeclinedInsufficientFunds`, `pm_card_authenticationRequired`,
`pm_card_threeDSecure2Required`, and the `tok_*` equivalents. 3-D Secure is completed (or failed) by
visiting the `redirect_to_url` URL (`?outcome=fail` to fail it), as a customer's browser would.

Fault knobs: `fail_next` (a burst of 5xx), `rate_limit_next` (429 with Retry-After and
Stripe-Should-Retry), `latency`, and `drop_response_next` (execute, save, then drop the connection
without answering: the charge is made, the client never hears of it).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, cast, overload
from urllib.parse import parse_qsl, urlencode

import httpx
from aiohttp import web
from aiohttp.typedefs import Handler

from activities.gateways.signing import hmac_sha256_hex

API_VERSION = "2026-10-28.endive"
DEFAULT_SECRET_KEY = "sk_test_durapay_fake_0123456789"
DEFAULT_WEBHOOK_SECRET = "whsec_durapay_fake_0123456789"

ZERO_DECIMAL = frozenset(
    [
        "bif",
        "clp",
        "djf",
        "gnf",
        "jpy",
        "kmf",
        "krw",
        "mga",
        "pyg",
        "rwf",
        "ugx",
        "vnd",
        "vuv",
        "xaf",
        "xof",
        "xpf",
    ]
)
THREE_DECIMAL = frozenset(["bhd", "jod", "kwd", "omr", "tnd"])
MINIMUM_CHARGE = {"usd": 50, "eur": 50, "gbp": 30, "jpy": 50}

# Stripe's test cards: how each behaves, and what its PaymentMethod shows.
TEST_CARDS: dict[str, dict[str, Any]] = {
    "visa": {"brand": "visa", "last4": "4242", "outcome": "succeed"},
    "mastercard": {"brand": "mastercard", "last4": "4444", "outcome": "succeed"},
    "chargeDeclined": {
        "brand": "visa",
        "last4": "0002",
        "outcome": "decline",
        "decline_code": "generic_decline",
    },
    "chargeDeclinedInsufficientFunds": {
        "brand": "visa",
        "last4": "9995",
        "outcome": "decline",
        "decline_code": "insufficient_funds",
    },
    "authenticationRequired": {"brand": "visa", "last4": "3184", "outcome": "succeed", "three_ds": True},
    "threeDSecure2Required": {"brand": "visa", "last4": "3220", "outcome": "succeed", "three_ds": True},
}
DECLINE_MESSAGES = {
    "generic_decline": "Your card was declined.",
    "insufficient_funds": "Your card has insufficient funds.",
}

PARAMS = web.RequestKey("params", dict)
IDEMPOTENCY_KEY = web.RequestKey[str | None]("idempotency_key")
INTENT_CANCELABLE = {
    "requires_payment_method",
    "requires_capture",
    "requires_confirmation",
    "requires_action",
    "processing",
}


class StripeFailure(Exception):
    """An error Stripe answers with its envelope. `executed`: endpoint work had begun, so the
    answer is saved under the idempotency key and replayed."""

    def __init__(
        self, status: int, type_: str, message: str, *, executed: bool = False, **fields: Any
    ) -> None:
        super().__init__(message)
        self.status = status
        self.executed = executed
        self.error = {"type": type_, "message": message, **{k: v for k, v in fields.items() if v is not None}}


def invalid(
    message: str, *, param: str | None = None, code: str | None = None, status: int = 400
) -> StripeFailure:
    return StripeFailure(status, "invalid_request_error", message, param=param, code=code)


def missing(kind: str, ident: str, param: str | None = None) -> StripeFailure:
    return invalid(f"No such {kind}: '{ident}'", param=param, code="resource_missing", status=404)


def decode_form(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """`a[b][0]=x` pairs -> {"a": {"b": ["x"]}}: how Stripe reads its form encoding."""
    root: dict[str, Any] = {}
    for raw_key, value in pairs:
        parts = [p for p in re.split(r"\[|\]", raw_key) if p != ""] or [raw_key]
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return _lists(root)


def _lists(node: Any) -> Any:
    if isinstance(node, dict):
        converted = {k: _lists(v) for k, v in node.items()}
        if converted and all(k.isdigit() for k in converted):
            return [converted[k] for k in sorted(converted, key=int)]
        return converted
    return node


def _bool(value: Any) -> bool:
    return str(value).lower() == "true"


@overload
def _int(params: dict[str, Any], name: str, *, required: Literal[True]) -> int: ...
@overload
def _int(params: dict[str, Any], name: str, *, required: bool = False) -> int | None: ...
def _int(params: dict[str, Any], name: str, *, required: bool = False) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise invalid(f"Missing required param: {name}.", param=name, code="parameter_missing")
        return None
    if not re.fullmatch(r"-?\d+", str(value)):
        raise invalid(f"Invalid integer: {value}", param=name, code="parameter_invalid_integer")
    return int(value)


def _metadata(params: dict[str, Any]) -> dict[str, str]:
    """`metadata` as Stripe takes it: at most 50 keys of up to 40 characters, values of up to 500
    (https://docs.stripe.com/metadata); anything else is a 400, and nothing is created."""
    metadata = params.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise invalid("Invalid metadata.", param="metadata")
    if len(metadata) > 50:
        raise invalid(
            f"Invalid metadata: metadata can have up to 50 keys, but you passed in {len(metadata)} keys.",
            param="metadata",
        )
    if any(len(key) > 40 for key in metadata):
        raise invalid("Invalid metadata: keys can be a maximum of 40 characters.", param="metadata")
    if any(len(str(value)) > 500 for value in metadata.values()):
        raise invalid("Invalid metadata: values can be a maximum of 500 characters.", param="metadata")
    return metadata


def _answered(handler: Callable[[web.Request], Awaitable[dict[str, Any]]]) -> Handler:
    """An API handler returns the Stripe object as a dict; `FakeStripe._middleware` answers it as
    JSON (with idempotency replay and faults), so to aiohttp it is a request handler."""
    return cast(Handler, handler)


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


@dataclass
class RecordedRequest:
    method: str
    path: str
    idempotency_key: str | None
    params: dict[str, Any]
    status: int = 0
    replayed: bool = False


@dataclass
class _Fault:
    remaining: int
    path: str | None = None
    status: int = 500
    executed: bool = False
    retry_after: float | None = None

    def matches(self, path: str) -> bool:
        return self.remaining > 0 and (self.path is None or self.path == path)


@dataclass
class _Saved:
    fingerprint: str
    status: int
    body: bytes


class FakeStripe:
    def __init__(
        self,
        *,
        secret_key: str = DEFAULT_SECRET_KEY,
        webhook_secrets: Iterable[str] = (DEFAULT_WEBHOOK_SECRET,),
        webhook_url: str | None = None,
        refund_status: str = "succeeded",
    ) -> None:
        self.secret_key = secret_key
        self.webhook_secrets = list(webhook_secrets)
        self.webhook_url = webhook_url
        self._default_refund_status = refund_status
        self.reset()
        self._runner: web.AppRunner | None = None
        self._deliveries: set[asyncio.Task[None]] = set()
        self._webhook_client: httpx.AsyncClient | None = None
        self.url = ""

    def reset(self) -> None:
        """Forget every object, request, event and knob (the server keeps running)."""
        self.refund_status = self._default_refund_status  # "pending": refunds settle via settle_refund()
        self.latency = 0.0
        self.max_page_size = 100  # Stripe's own cap on `limit`; lower it to exercise paging
        # Search is eventually consistent at Stripe: an intent shows in search results only this
        # many seconds after it was created (0: at once).
        self.search_index_lag_seconds = 0.0
        self.payment_intents: dict[str, dict[str, Any]] = {}
        self.charges: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self.customers: dict[str, dict[str, Any]] = {}
        self.payment_methods: dict[str, dict[str, Any]] = {}
        self.disputes: dict[str, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.requests: list[RecordedRequest] = []
        self.deliveries: list[tuple[str, int]] = []  # (event id, HTTP status) per webhook sent
        self._detached: set[str] = set()
        self._idempotency: dict[str, _Saved] = {}
        self._in_flight: set[str] = set()
        self._faults: list[_Fault] = []
        self._drops: list[_Fault] = []

    # -- lifecycle ----------------------------------------------------------------------------------

    async def start(self) -> FakeStripe:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_post("/v1/payment_intents", _answered(self._create_intent))
        app.router.add_get("/v1/payment_intents/search", _answered(self._search_intents))
        app.router.add_get("/v1/payment_intents/{id}", _answered(self._retrieve_intent))
        app.router.add_post("/v1/payment_intents/{id}/confirm", _answered(self._confirm_intent))
        app.router.add_post("/v1/payment_intents/{id}/capture", _answered(self._capture_intent))
        app.router.add_post("/v1/payment_intents/{id}/cancel", _answered(self._cancel_intent))
        app.router.add_post("/v1/refunds", _answered(self._create_refund))
        app.router.add_get("/v1/refunds", _answered(self._list_refunds))
        app.router.add_get("/v1/refunds/{id}", _answered(self._retrieve_refund))
        app.router.add_post("/v1/customers", _answered(self._create_customer))
        app.router.add_get("/v1/customers/{id}", _answered(self._retrieve_customer))
        app.router.add_get("/v1/customers/{id}/payment_methods", _answered(self._customer_payment_methods))
        app.router.add_get("/v1/payment_methods/{id}", _answered(self._retrieve_payment_method))
        app.router.add_post("/v1/payment_methods/{id}/attach", _answered(self._attach))
        app.router.add_post("/v1/payment_methods/{id}/detach", _answered(self._detach))
        app.router.add_get("/fake/3ds/{id}", self._three_ds_page)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        self._webhook_client = httpx.AsyncClient(timeout=10)
        return self

    async def stop(self) -> None:
        await self.wait_for_webhooks()
        if self._webhook_client is not None:
            await self._webhook_client.aclose()
        if self._runner is not None:
            await self._runner.cleanup()

    def gateway_section(self, **overrides: Any) -> dict[str, Any]:
        """A `[payment.stripe]` config section pointing at this fake."""
        return {
            "enabled": True,
            "secret_key": self.secret_key,
            "publishable_key": "pk_test_durapay_fake",
            "webhook_secret": list(self.webhook_secrets),
            "api_base": self.url,
            "currencies": ["USD", "EUR", "JPY", "ISK", "KWD", "MGA"],
            **overrides,
        }

    def deliver_webhooks_to(self, url: str) -> None:
        self.webhook_url = url

    async def __aenter__(self) -> FakeStripe:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- fault knobs ----------------------------------------------------------------------------------

    def fail_next(
        self, count: int, *, status: int = 500, path: str | None = None, executed: bool = False
    ) -> None:
        """The next `count` requests (to exactly `path`, when given) answer `status`. `executed=True`: Stripe got as far as
        doing the work (and saves the 5xx under the key, so a retry replays it)."""
        self._faults.append(_Fault(remaining=count, path=path, status=status, executed=executed))

    def rate_limit_next(self, count: int, *, retry_after: float | None = 1, path: str | None = None) -> None:
        self._faults.append(_Fault(remaining=count, path=path, status=429, retry_after=retry_after))

    def drop_response_next(self, count: int = 1, *, path: str | None = None) -> None:
        """Do the work, save the answer under the key, then close the connection unanswered."""
        self._drops.append(_Fault(remaining=count, path=path))

    # -- ledger and helpers for tests ----------------------------------------------------------------

    def intents_for(self, payment_id: str) -> list[dict[str, Any]]:
        return [
            pi
            for pi in self.payment_intents.values()
            if pi["metadata"].get("durapay_payment_id") == payment_id
        ]

    def charges_for(self, payment_id: str, *, status: str = "succeeded") -> list[dict[str, Any]]:
        """Charges that moved (or held) money for our payment: what "charged once" is checked on."""
        intents = {pi["id"] for pi in self.intents_for(payment_id)}
        return [
            ch for ch in self.charges.values() if ch["payment_intent"] in intents and ch["status"] == status
        ]

    def events_of(self, event_type: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == event_type]

    def posts(self, path_prefix: str = "/v1/") -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == "POST" and r.path.startswith(path_prefix)]

    def three_ds_url(self, intent_id: str) -> str:
        return f"{self.url}/fake/3ds/{intent_id}"

    # -- webhooks -----------------------------------------------------------------------------------------

    def build_event(
        self, event_type: str, obj: dict[str, Any], *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        return {
            "id": _new_id("evt"),
            "object": "event",
            "api_version": API_VERSION,
            "created": int(time.time()),
            "data": {"object": json.loads(json.dumps(obj))},
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": _new_id("req"), "idempotency_key": idempotency_key},
            "type": event_type,
        }

    def sign(
        self, payload: bytes, *, timestamp: int | None = None, secrets_: Iterable[str] | None = None
    ) -> str:
        """`Stripe-Signature`: one `v1` per active endpoint secret, as Stripe sends while rolling."""
        ts = int(time.time()) if timestamp is None else timestamp
        signed = f"{ts}.".encode() + payload
        parts = [f"t={ts}"] + [f"v1={hmac_sha256_hex(s, signed)}" for s in (secrets_ or self.webhook_secrets)]
        return ",".join(parts)

    def encode_event(self, event: dict[str, Any], **sign_args: Any) -> tuple[dict[str, str], bytes]:
        # Stripe delivers pretty-printed JSON: receivers must verify the raw bytes, not a re-dump.
        body = json.dumps(event, indent=2).encode()
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            "Stripe-Signature": self.sign(body, **sign_args),
        }
        return headers, body

    async def deliver(self, event: dict[str, Any], url: str | None = None, **sign_args: Any) -> int:
        target = url or self.webhook_url
        if target is None or self._webhook_client is None:
            raise RuntimeError("no webhook URL to deliver to")
        headers, body = self.encode_event(event, **sign_args)
        response = await self._webhook_client.post(target, content=body, headers=headers)
        self.deliveries.append((event["id"], response.status_code))
        return response.status_code

    async def wait_for_webhooks(self) -> None:
        while self._deliveries:
            await asyncio.gather(*list(self._deliveries), return_exceptions=True)

    def _emit(
        self, event_type: str, obj: dict[str, Any], idempotency_key: str | None = None
    ) -> dict[str, Any]:
        event = self.build_event(event_type, obj, idempotency_key=idempotency_key)
        self.events.append(event)
        if self.webhook_url is not None:
            task = asyncio.get_running_loop().create_task(self._deliver_quietly(event))
            self._deliveries.add(task)
            task.add_done_callback(self._deliveries.discard)
        return event

    async def _deliver_quietly(self, event: dict[str, Any]) -> None:
        try:
            await self.deliver(event)
        except httpx.HTTPError:
            self.deliveries.append((event["id"], 0))

    # -- the dashboard side: what happens outside the API ---------------------------------------------

    def open_dispute(self, intent_id: str, *, reason: str = "fraudulent") -> dict[str, Any]:
        intent = self.payment_intents[intent_id]
        charge = self.charges[intent["latest_charge"]]
        dispute = {
            "id": _new_id("dp"),
            "object": "dispute",
            "amount": charge["amount_captured"],
            "currency": charge["currency"],
            "charge": charge["id"],
            "payment_intent": intent_id,
            "reason": reason,
            "status": "needs_response",
            "evidence_details": {"due_by": int(time.time()) + 7 * 86400, "has_evidence": False},
            "is_charge_refundable": False,
            "created": int(time.time()),
            "livemode": False,
            "metadata": {},
        }
        self.disputes[dispute["id"]] = dispute
        charge["disputed"] = True
        return self._emit("charge.dispute.created", dispute)

    def close_dispute(self, dispute_id: str, *, status: str = "lost") -> dict[str, Any]:
        dispute = self.disputes[dispute_id]
        dispute["status"] = status
        return self._emit("charge.dispute.closed", dispute)

    def settle_refund(self, refund_id: str, *, succeed: bool = True) -> dict[str, Any]:
        refund = self.refunds[refund_id]
        charge = self.charges[refund["charge"]]
        if succeed:
            refund["status"] = "succeeded"
            self._emit("refund.updated", refund)
            return self._emit("charge.refunded", charge)
        refund["status"] = "failed"
        refund["failure_reason"] = "expired_or_canceled_card"
        charge["amount_refunded"] -= refund["amount"]
        charge["refunded"] = False
        return self._emit("refund.failed", refund)

    def complete_three_ds(self, intent_id: str, *, succeed: bool = True) -> dict[str, Any]:
        """The customer finished (or failed) the 3-D Secure challenge."""
        intent = self.payment_intents[intent_id]
        if intent["status"] != "requires_action":
            return intent
        intent["next_action"] = None
        if succeed:
            # A decline is recorded on the intent and its charge.
            with contextlib.suppress(StripeFailure):
                self._authorize(intent, self.payment_methods[intent["payment_method"]], None)
        else:
            intent["status"] = "requires_payment_method"
            intent["last_payment_error"] = {
                "type": "invalid_request_error",
                "code": "payment_intent_authentication_failure",
                "message": "The provided PaymentMethod has failed authentication. You can provide "
                "payment_method_data or a new PaymentMethod to attempt to fulfill this PaymentIntent again.",
                "payment_method": self._public(self.payment_methods[intent["payment_method"]]),
            }
            self._emit("payment_intent.payment_failed", intent)
        return intent

    # -- HTTP plumbing ------------------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith("/fake/"):
            return await handler(request)
        if not self._authorized(request.headers.get("Authorization", "")):
            return self._error_response(
                invalid("Invalid API Key provided: " + self.secret_key[:8] + "****", status=401)
            )
        body = await request.text() if request.method == "POST" else request.query_string
        pairs = parse_qsl(body, keep_blank_values=True)
        params = decode_form(pairs)
        key = request.headers.get("Idempotency-Key")
        record = RecordedRequest(request.method, request.path, key, params)
        self.requests.append(record)

        fault = next((f for f in self._faults if f.matches(request.path)), None)
        if fault is not None and not fault.executed:
            fault.remaining -= 1
            record.status = fault.status
            return self._fault_response(fault)

        fingerprint = json.dumps([request.method, request.path, sorted(pairs)])
        if request.method == "POST" and key:
            saved = self._idempotency.get(key)
            if saved is not None:
                if saved.fingerprint != fingerprint:
                    record.status = 400
                    return self._error_response(
                        StripeFailure(
                            400,
                            "idempotency_error",
                            "Keys for idempotent requests can only be used with the same parameters they were "
                            f"first used with. Try using a key other than '{key}' if you meant to execute a "
                            "different request.",
                        )
                    )
                record.status, record.replayed = saved.status, True
                return self._json(saved.status, saved.body, replayed=True)
            if key in self._in_flight:
                record.status = 409
                return self._error_response(
                    StripeFailure(
                        409,
                        "idempotency_error",
                        "There is currently another in-progress request using this Idempotent Key (that "
                        "probably means you submitted twice, and the other request is still going through): "
                        f"{key}. Please try again later.",
                    )
                )
            self._in_flight.add(key)
        try:
            if self.latency:
                # Slow while holding the key, as Stripe would be: a retry meanwhile gets a 409.
                await asyncio.sleep(self.latency)
            status, payload, executed = await self._run(request, handler, params, key, fault)
        finally:
            if key:
                self._in_flight.discard(key)
        body_bytes = json.dumps(payload, indent=2).encode()
        if request.method == "POST" and key and executed:
            self._idempotency[key] = _Saved(fingerprint, status, body_bytes)
        record.status = status
        drop = next((d for d in self._drops if d.matches(request.path)), None)
        if drop is not None and request.method == "POST":
            drop.remaining -= 1
            # The work is done and saved; the client never hears of it.
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError
        return self._json(status, body_bytes)

    async def _run(
        self,
        request: web.Request,
        handler: Any,
        params: dict[str, Any],
        key: str | None,
        fault: _Fault | None,
    ) -> tuple[int, dict[str, Any], bool]:
        request[PARAMS] = params
        request[IDEMPOTENCY_KEY] = key
        try:
            result = await handler(request)
        except StripeFailure as failure:
            return failure.status, {"error": failure.error}, failure.executed
        if fault is not None:
            # A failure after the work was done: saved and replayed like any other answer.
            fault.remaining -= 1
            return (
                fault.status,
                {"error": {"type": "api_error", "message": "An unknown error occurred"}},
                True,
            )
        return 200, result, True

    def _authorized(self, header: str) -> bool:
        scheme, _, value = header.partition(" ")
        if scheme == "Bearer":
            return secrets.compare_digest(value, self.secret_key)
        if scheme == "Basic":
            try:
                user, _, _ = base64.b64decode(value).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return False
            return secrets.compare_digest(user, self.secret_key)
        return False

    def _fault_response(self, fault: _Fault) -> web.Response:
        if fault.status == 429:
            headers = {"Stripe-Should-Retry": "true"}
            if fault.retry_after is not None:
                headers["Retry-After"] = f"{fault.retry_after:g}"
            return self._error_response(
                invalid(
                    "Request rate limit exceeded. Learn more about rate limits here "
                    "https://stripe.com/docs/rate-limits.",
                    code="rate_limit",
                    status=429,
                ),
                headers=headers,
            )
        # Nothing was executed: Stripe tells the client a retry is safe.
        return self._error_response(
            StripeFailure(fault.status, "api_error", "An unknown error occurred"),
            headers={"Stripe-Should-Retry": "true"},
        )

    def _json(
        self, status: int, body: bytes, *, replayed: bool = False, headers: dict[str, str] | None = None
    ) -> web.Response:
        all_headers = {"Request-Id": _new_id("req"), "Stripe-Version": API_VERSION, **(headers or {})}
        if replayed:
            all_headers["Idempotent-Replayed"] = "true"
        return web.Response(status=status, body=body, content_type="application/json", headers=all_headers)

    def _error_response(self, failure: StripeFailure, headers: dict[str, str] | None = None) -> web.Response:
        return self._json(
            failure.status, json.dumps({"error": failure.error}, indent=2).encode(), headers=headers
        )

    # -- payment methods -----------------------------------------------------------------------------------

    def _payment_method(self, ident: str, *, param: str = "payment_method") -> dict[str, Any]:
        """A PaymentMethod by id. Stripe's test ids (pm_card_visa ...) mint a fresh one each use."""
        if ident.startswith("pm_card_") and ident[len("pm_card_") :] in TEST_CARDS:
            return self._mint_payment_method(TEST_CARDS[ident[len("pm_card_") :]])
        method = self.payment_methods.get(ident)
        if method is None:
            raise missing("PaymentMethod", ident, param)
        if ident in self._detached:
            raise invalid(
                "This PaymentMethod was previously used without being attached to a Customer or was detached "
                "from a Customer, and may not be used again.",
                param=param,
            )
        return method

    def _payment_method_from_token(self, token: str) -> dict[str, Any]:
        name = token[len("tok_") :]
        if name not in TEST_CARDS:
            raise missing("token", token, "payment_method_data[card][token]")
        return self._mint_payment_method(TEST_CARDS[name])

    def _mint_payment_method(self, card: dict[str, Any]) -> dict[str, Any]:
        method: dict[str, Any] = {
            "id": _new_id("pm"),
            "object": "payment_method",
            "type": "card",
            "card": {
                "brand": card["brand"],
                "last4": card["last4"],
                "exp_month": 12,
                "exp_year": 2034,
                "country": "US",
                "fingerprint": "fp" + card["last4"],
                "funding": "credit",
            },
            "customer": None,
            "created": int(time.time()),
            "livemode": False,
            "metadata": {},
            "_behaviour": card,  # ours, stripped from every answer
        }
        self.payment_methods[method["id"]] = method
        return method

    @staticmethod
    def _public(obj: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in obj.items() if not k.startswith("_")}

    # -- PaymentIntents ----------------------------------------------------------------------------------

    async def _create_intent(self, request: web.Request) -> dict[str, Any]:
        p = request[PARAMS]
        amount = _int(p, "amount", required=True)
        currency = str(p.get("currency") or "")
        if not currency:
            raise invalid("Missing required param: currency.", param="currency", code="parameter_missing")
        if currency != currency.lower() or len(currency) != 3:
            raise invalid(f"Invalid currency: {currency}.", param="currency", code="parameter_invalid_string")
        self._check_amount(amount, currency)
        capture_method = p.get("capture_method", "automatic_async")
        if capture_method not in ("automatic", "automatic_async", "manual"):
            raise invalid(f"Invalid capture_method: {capture_method}", param="capture_method")
        types = p.get("payment_method_types") or ["card"]
        if types != ["card"]:
            raise invalid("This fake takes card payment methods only.", param="payment_method_types")
        if p.get("statement_descriptor"):
            raise invalid(
                "The `statement_descriptor` parameter is not supported for the `card` payment method type. "
                "Please use `statement_descriptor_suffix` instead.",
                param="statement_descriptor",
            )
        metadata = _metadata(p)
        customer = p.get("customer")
        if customer and customer not in self.customers:
            raise missing("customer", customer, "customer")
        now = int(time.time())
        intent_id = _new_id("pi")
        intent: dict[str, Any] = {
            "id": intent_id,
            "object": "payment_intent",
            "amount": amount,
            "amount_capturable": 0,
            "amount_received": 0,
            "canceled_at": None,
            "cancellation_reason": None,
            "capture_method": capture_method,
            "client_secret": f"{intent_id}_secret_{secrets.token_hex(12)}",
            "confirmation_method": "automatic",
            "created": now,
            "currency": currency,
            "customer": customer,
            "description": p.get("description"),
            "last_payment_error": None,
            "latest_charge": None,
            "livemode": False,
            "metadata": metadata,
            "next_action": None,
            "payment_method": None,
            "payment_method_options": p.get("payment_method_options") or {},
            "payment_method_types": types,
            "statement_descriptor_suffix": p.get("statement_descriptor_suffix"),
            "status": "requires_payment_method",
        }
        method = self._method_of(p, intent)
        self.payment_intents[intent_id] = intent
        if method is not None:
            intent["payment_method"] = method["id"]
            intent["status"] = "requires_confirmation"
        if _bool(p.get("confirm")):
            if method is None:
                raise invalid(
                    "You cannot confirm this PaymentIntent because it's missing a payment method.",
                    code="payment_intent_unexpected_state",
                )
            self._confirm(intent, method, p.get("return_url"), request[IDEMPOTENCY_KEY])
        return self._public(intent)

    def _method_of(self, p: dict[str, Any], intent: dict[str, Any]) -> dict[str, Any] | None:
        data = p.get("payment_method_data")
        if data:
            if data.get("type") != "card" or not (data.get("card") or {}).get("token"):
                raise invalid(
                    "payment_method_data must be a card with a token here.", param="payment_method_data"
                )
            return self._payment_method_from_token(data["card"]["token"])
        if p.get("payment_method"):
            method = self._payment_method(p["payment_method"])
            if method["customer"] and method["customer"] != intent["customer"]:
                raise invalid(
                    "The provided PaymentMethod belongs to a Customer, but you did not provide the matching "
                    "Customer on the PaymentIntent.",
                    param="payment_method",
                )
            return method
        return None

    @staticmethod
    def _check_amount(amount: int, currency: str) -> None:
        if amount < 1:
            raise invalid(
                "This value must be greater than or equal to 1.",
                param="amount",
                code="parameter_invalid_integer",
            )
        if currency in THREE_DECIMAL and amount % 10:
            raise invalid(
                f"Amounts in {currency.upper()} must be divisible by 10 (the last digit must be 0).",
                param="amount",
                code="invalid_amount",
            )
        if currency == "isk" and amount % 100:
            raise invalid(
                "ISK amounts must be whole krónur (divisible by 100).", param="amount", code="invalid_amount"
            )
        if amount < MINIMUM_CHARGE.get(currency, 1):
            raise invalid(
                "Amount must be at least the minimum charge amount.", param="amount", code="amount_too_small"
            )
        if amount > 99_999_999:
            raise invalid("Amount must be no more than 99999999.", param="amount", code="amount_too_large")

    def _confirm(
        self, intent: dict[str, Any], method: dict[str, Any], return_url: str | None, key: str | None
    ) -> None:
        intent["last_payment_error"] = None
        behaviour = method.get("_behaviour", {"outcome": "succeed"})
        wants_3ds = (intent["payment_method_options"].get("card") or {}).get(
            "request_three_d_secure"
        ) == "any"
        if behaviour.get("three_ds") or wants_3ds:
            intent["status"] = "requires_action"
            url = self.three_ds_url(intent["id"])
            if return_url:
                intent["next_action"] = {
                    "type": "redirect_to_url",
                    "redirect_to_url": {"url": url, "return_url": return_url},
                }
            else:
                intent["next_action"] = {
                    "type": "use_stripe_sdk",
                    "use_stripe_sdk": {
                        "type": "three_d_secure_redirect",
                        "stripe_js": url,
                        "source": _new_id("src"),
                    },
                }
            intent["_return_url"] = return_url
            self._emit("payment_intent.requires_action", self._public(intent), key)
            return
        self._authorize(intent, method, key)

    def _authorize(self, intent: dict[str, Any], method: dict[str, Any], key: str | None) -> None:
        """The card network's answer: a charge, succeeded (held or captured) or failed."""
        behaviour = method.get("_behaviour", {"outcome": "succeed"})
        declined = behaviour.get("outcome") == "decline"
        charge = {
            "id": _new_id("ch"),
            "object": "charge",
            "amount": intent["amount"],
            "amount_captured": 0,
            "amount_refunded": 0,
            "captured": False,
            "currency": intent["currency"],
            "customer": intent["customer"],
            "disputed": False,
            "failure_code": "card_declined" if declined else None,
            "failure_message": DECLINE_MESSAGES.get(behaviour.get("decline_code", "")) if declined else None,
            "metadata": dict(intent["metadata"]),
            "paid": not declined,
            "payment_intent": intent["id"],
            "payment_method": method["id"],
            "payment_method_details": {
                "type": "card",
                "card": {k: method["card"][k] for k in ("brand", "last4")},
            },
            "refunded": False,
            "status": "failed" if declined else "succeeded",
            "created": int(time.time()),
            "livemode": False,
        }
        self.charges[charge["id"]] = charge
        intent["latest_charge"] = charge["id"]
        if declined:
            decline_code = behaviour["decline_code"]
            error = {
                "type": "card_error",
                "code": "card_declined",
                "decline_code": decline_code,
                "message": DECLINE_MESSAGES[decline_code],
                "charge": charge["id"],
                "doc_url": "https://stripe.com/docs/error-codes/card-declined",
                "payment_method": self._public(method),
            }
            intent["status"] = "requires_payment_method"
            intent["last_payment_error"] = error
            self._emit("payment_intent.payment_failed", self._public(intent), key)
            details = {k: v for k, v in error.items() if k not in ("type", "message")}
            raise StripeFailure(
                402,
                "card_error",
                error["message"],
                executed=True,
                payment_intent=self._public(intent),
                **details,
            )
        if intent["capture_method"] == "manual":
            intent["status"] = "requires_capture"
            intent["amount_capturable"] = intent["amount"]
            self._emit("payment_intent.amount_capturable_updated", self._public(intent), key)
        else:
            charge["captured"] = True
            charge["amount_captured"] = intent["amount"]
            intent["status"] = "succeeded"
            intent["amount_received"] = intent["amount"]
            self._emit("payment_intent.succeeded", self._public(intent), key)

    def _intent(self, request: web.Request) -> dict[str, Any]:
        ident = request.match_info["id"]
        intent = self.payment_intents.get(ident)
        if intent is None:
            raise missing("payment_intent", ident, "intent")
        return intent

    async def _retrieve_intent(self, request: web.Request) -> dict[str, Any]:
        return self._public(self._intent(request))

    async def _confirm_intent(self, request: web.Request) -> dict[str, Any]:
        intent = self._intent(request)
        p = request[PARAMS]
        if intent["status"] not in ("requires_payment_method", "requires_confirmation"):
            raise invalid(
                f"This PaymentIntent's status is {intent['status']}, so it cannot be confirmed.",
                code="payment_intent_unexpected_state",
            )
        method = self._method_of(p, intent)
        if method is None and intent["payment_method"]:
            method = self.payment_methods[intent["payment_method"]]
        if method is None:
            raise invalid(
                "You cannot confirm this PaymentIntent because it's missing a payment method.",
                code="payment_intent_unexpected_state",
            )
        intent["payment_method"] = method["id"]
        self._confirm(intent, method, p.get("return_url"), request[IDEMPOTENCY_KEY])
        return self._public(intent)

    async def _capture_intent(self, request: web.Request) -> dict[str, Any]:
        intent = self._intent(request)
        if intent["status"] != "requires_capture":
            raise invalid(
                f"This PaymentIntent could not be captured because it has a status of {intent['status']}. "
                "Only a PaymentIntent with one of the following statuses may be captured: requires_capture.",
                code="payment_intent_unexpected_state",
            )
        amount = _int(request[PARAMS], "amount_to_capture") or intent["amount_capturable"]
        if amount > intent["amount_capturable"]:
            raise invalid(
                "The amount to capture must be less than or equal to the amount capturable.",
                param="amount_to_capture",
                code="amount_too_large",
            )
        charge = self.charges[intent["latest_charge"]]
        charge["captured"] = True
        charge["amount_captured"] = amount
        intent["amount_received"] = amount
        intent["amount_capturable"] = 0
        intent["status"] = "succeeded"
        self._emit("payment_intent.succeeded", self._public(intent), request[IDEMPOTENCY_KEY])
        return self._public(intent)

    async def _cancel_intent(self, request: web.Request) -> dict[str, Any]:
        intent = self._intent(request)
        reason = request[PARAMS].get("cancellation_reason")
        if reason is not None and reason not in (
            "duplicate",
            "fraudulent",
            "requested_by_customer",
            "abandoned",
        ):
            raise invalid(f"Invalid cancellation_reason: {reason}", param="cancellation_reason")
        if intent["status"] not in INTENT_CANCELABLE:
            raise invalid(
                f"You cannot cancel this PaymentIntent because it has a status of {intent['status']}. Only a "
                "PaymentIntent with one of the following statuses may be canceled: "
                + ", ".join(sorted(INTENT_CANCELABLE))
                + ".",
                code="payment_intent_unexpected_state",
            )
        if intent["latest_charge"] and intent["status"] == "requires_capture":
            self.charges[intent["latest_charge"]]["status"] = "canceled"  # the hold is released
        intent.update(
            status="canceled",
            cancellation_reason=reason,
            canceled_at=int(time.time()),
            amount_capturable=0,
            next_action=None,
        )
        self._emit("payment_intent.canceled", self._public(intent), request[IDEMPOTENCY_KEY])
        return self._public(intent)

    async def _search_intents(self, request: web.Request) -> dict[str, Any]:
        query = str(request[PARAMS].get("query") or "")
        match = re.fullmatch(r"\s*metadata\['([^'\]]+)'\]\s*:\s*'([^']*)'\s*", query)
        if match is None:
            raise invalid(f"This fake searches by one metadata clause only, not {query!r}.", param="query")
        key, value = match.groups()
        indexed_before = time.time() - self.search_index_lag_seconds
        found = [
            pi
            for pi in self.payment_intents.values()
            if pi["metadata"].get(key) == value and pi["created"] <= indexed_before
        ]
        found.sort(key=lambda pi: pi["created"], reverse=True)
        limit = _int(request[PARAMS], "limit") or 10
        return {
            "object": "search_result",
            "data": [self._public(pi) for pi in found[:limit]],
            "has_more": len(found) > limit,
            "next_page": None,
            "url": "/v1/payment_intents/search",
        }

    # -- refunds --------------------------------------------------------------------------------------

    async def _create_refund(self, request: web.Request) -> dict[str, Any]:
        p = request[PARAMS]
        if p.get("payment_intent"):
            intent = self.payment_intents.get(p["payment_intent"])
            if intent is None:
                raise missing("payment_intent", p["payment_intent"], "payment_intent")
            charge = self.charges.get(intent["latest_charge"] or "")
        elif p.get("charge"):
            charge = self.charges.get(p["charge"])
            if charge is None:
                raise missing("charge", p["charge"], "charge")
        else:
            raise invalid(
                "One of the following params should be provided for this request: payment_intent or charge."
            )
        if charge is None or not charge["captured"]:
            raise invalid(
                "This PaymentIntent does not have a successful charge to refund.",
                code="charge_not_refundable",
            )
        remaining = charge["amount_captured"] - charge["amount_refunded"]
        if remaining <= 0:
            raise invalid(f"Charge {charge['id']} has already been refunded.", code="charge_already_refunded")
        amount = _int(p, "amount") or remaining
        if amount > remaining:
            raise invalid(
                f"Refund amount ({amount}) is greater than unrefunded amount on charge ({remaining})",
                param="amount",
                code="amount_too_large",
            )
        reason = p.get("reason")
        if reason is not None and reason not in ("duplicate", "fraudulent", "requested_by_customer"):
            raise invalid(f"Invalid reason: {reason}", param="reason")
        refund = {
            "id": _new_id("re"),
            "object": "refund",
            "amount": amount,
            "charge": charge["id"],
            "currency": charge["currency"],
            "payment_intent": charge["payment_intent"],
            "reason": reason,
            "status": self.refund_status,
            "failure_reason": None,
            "metadata": _metadata(p),
            "created": int(time.time()),
        }
        self.refunds[refund["id"]] = refund
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount_captured"]
        key = request[IDEMPOTENCY_KEY]
        self._emit("refund.created", refund, key)
        if refund["status"] == "succeeded":
            self._emit("charge.refunded", charge, key)
        return refund

    async def _list_refunds(self, request: web.Request) -> dict[str, Any]:
        p = request[PARAMS]
        refunds = sorted(self.refunds.values(), key=lambda r: r["created"], reverse=True)
        if p.get("payment_intent"):
            refunds = [r for r in refunds if r["payment_intent"] == p["payment_intent"]]
        return self._page(refunds, p, "/v1/refunds")

    async def _retrieve_refund(self, request: web.Request) -> dict[str, Any]:
        ident = request.match_info["id"]
        if ident not in self.refunds:
            raise missing("refund", ident, "id")
        return self.refunds[ident]

    # -- customers and saved payment methods ---------------------------------------------------------

    async def _create_customer(self, request: web.Request) -> dict[str, Any]:
        p = request[PARAMS]
        customer: dict[str, Any] = {
            "id": _new_id("cus"),
            "object": "customer",
            "email": p.get("email"),
            "name": p.get("name"),
            "metadata": _metadata(p),
            "created": int(time.time()),
            "livemode": False,
        }
        self.customers[customer["id"]] = customer
        return customer

    async def _retrieve_customer(self, request: web.Request) -> dict[str, Any]:
        ident = request.match_info["id"]
        if ident not in self.customers:
            raise missing("customer", ident, "id")
        return self.customers[ident]

    async def _customer_payment_methods(self, request: web.Request) -> dict[str, Any]:
        ident = request.match_info["id"]
        if ident not in self.customers:
            raise missing("customer", ident, "customer")
        kind = request[PARAMS].get("type")
        methods = [
            self._public(m)
            for m in self.payment_methods.values()
            if m["customer"] == ident and (kind is None or m["type"] == kind)
        ]
        methods.sort(key=lambda m: m["created"], reverse=True)
        return self._page(methods, request[PARAMS], f"/v1/customers/{ident}/payment_methods")

    async def _retrieve_payment_method(self, request: web.Request) -> dict[str, Any]:
        ident = request.match_info["id"]
        if ident not in self.payment_methods:
            raise missing("PaymentMethod", ident, "id")
        return self._public(self.payment_methods[ident])

    async def _attach(self, request: web.Request) -> dict[str, Any]:
        customer = request[PARAMS].get("customer")
        if not customer:
            raise invalid("Missing required param: customer.", param="customer", code="parameter_missing")
        if customer not in self.customers:
            raise missing("customer", customer, "customer")
        method = self._payment_method(request.match_info["id"], param="id")
        if method["customer"] and method["customer"] != customer:
            raise invalid("The payment method you provided has already been attached to a customer.")
        method["customer"] = customer
        return self._public(method)

    async def _detach(self, request: web.Request) -> dict[str, Any]:
        method = self._payment_method(request.match_info["id"], param="id")
        if not method["customer"]:
            raise invalid(
                "The payment method you provided is not attached to a customer so detachment is impossible."
            )
        method["customer"] = None
        self._detached.add(method["id"])
        return self._public(method)

    def _page(self, items: list[dict[str, Any]], p: dict[str, Any], url: str) -> dict[str, Any]:
        limit = min(_int(p, "limit") or 10, self.max_page_size)
        after = p.get("starting_after")
        if after:
            ids = [item["id"] for item in items]
            items = items[ids.index(after) + 1 :] if after in ids else []
        return {"object": "list", "data": items[:limit], "has_more": len(items) > limit, "url": url}

    # -- the customer's browser ----------------------------------------------------------------------

    async def _three_ds_page(self, request: web.Request) -> web.Response:
        ident = request.match_info["id"]
        if ident not in self.payment_intents:
            return web.Response(status=404, text="unknown PaymentIntent")
        succeed = request.query.get("outcome", "succeed") != "fail"
        intent = self.complete_three_ds(ident, succeed=succeed)
        return_url = intent.get("_return_url")
        if not return_url:
            return web.json_response({"status": intent["status"]})
        query = urlencode(
            {
                "payment_intent": ident,
                "payment_intent_client_secret": intent["client_secret"],
                "redirect_status": "succeeded"
                if intent["status"] in ("succeeded", "requires_capture")
                else "failed",
            }
        )
        raise web.HTTPFound(f"{return_url}{'&' if '?' in return_url else '?'}{query}")
