"""PayPal through its REST v2 Orders and Payments APIs, over the shared httpx transport.

Why httpx and not the official `paypal-server-sdk` (2.4.0, read before deciding): it does send
`PayPal-Request-Id` (a `paypal_request_id` option per call), but its base URL is one of two
hard-coded environments (`Configuration.environments`: production, sandbox), so pointing it at a
fake means patching a class attribute; it is synchronous (requests, through apimatic-core), so every
call would block the worker's event loop or need a thread; it retries on its own; and it has no
webhook-verification call at all. Our shared transport (activities/gateways/http.py) already maps
every wire failure to the gateway errors in one place, and the handful of JSON calls below need
nothing more.

A payment is an order. PayPal moves no money until the payer approves the order on PayPal's page
(`next_action` redirect); then *we* must capture it (intent CAPTURE) or authorize it (intent
AUTHORIZE, captured later by `capture`). The workflow learns of the approval by asking (`lookup`,
after `/actions/complete`, a `CHECKOUT.ORDER.APPROVED` webhook or its poll), so the lookup finishes
an approved order: the order's state at PayPal, after the payer's approval, is the proof; what the
payer's return carried is never trusted. That finishing call's `PayPal-Request-Id` is derived from
the order id, so every path that finishes the same order repeats one request.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import threading
import time
from collections.abc import Coroutine, Iterator, Mapping
from typing import Any, NoReturn

import httpx

from activities.gateways.base import (
    Gateway,
    GatewayError,
    GatewayInvalidRequest,
    GatewayOutcomeUnknown,
    WebhookVerificationError,
    required_field,
)
from activities.gateways.http import HttpTransport, raise_rejection
from activities.gateways.paypal import GATEWAY_ID
from activities.gateways.paypal import transform as tf
from activities.gateways.paypal import webhooks as wh
from activities.gateways.paypal.settings import PayPalSettings
from activities.gateways.token_cache import IssuedToken, TokenCache
from workflows.domain import Failure, GatewayProfile, RefundStatus, WalletMethod
from workflows.gateway_io import (
    AuthorizeCall,
    CancelCall,
    CaptureCall,
    GatewayEvent,
    GatewayPaymentStatus,
    GatewayResult,
    LookupCall,
    RefundCall,
    RefundLookupCall,
    RefundResult,
)


class PayPalApi:
    """Authenticated JSON calls to PayPal: the bearer token is cached until shortly before it
    expires and fetched again once when PayPal refuses it (401)."""

    def __init__(self, settings: PayPalSettings) -> None:
        self._settings = settings
        self._http = HttpTransport(tf.PROVIDER, settings.endpoint, settings.http)
        self._tokens = TokenCache(self._fetch_token)

    async def _fetch_token(self) -> IssuedToken:
        secret = self._settings.client_secret.get_secret_value()
        basic = base64.b64encode(f"{self._settings.client_id}:{secret}".encode()).decode()
        response = await self._http.request(
            "POST",
            "/v1/oauth2/token",
            content=b"grant_type=client_credentials",
            headers={"Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded"},
        )
        if response.status_code != 200:
            self._reject(response)
        answer = _json(response)
        token = answer.get("access_token")
        if not token:
            raise GatewayOutcomeUnknown("PayPal answered the token request without access_token")
        return IssuedToken(value=str(token), expires_at=time.time() + float(answer.get("expires_in") or 0))

    async def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content: bytes | None = None,
        request_id: str | None = None,
        allow: tuple[int, ...] = (),
    ) -> tuple[int, Any]:
        """(status, JSON answer) of a 2xx answer or of a status in `allow`; any other answer raises."""
        headers = {"Content-Type": "application/json", "Prefer": "return=representation"}
        if request_id is not None:
            # Repeating a request under the same id returns the original's current state.
            headers["PayPal-Request-Id"] = request_id
        if body is not None:
            content = httpx.Request("POST", "/", json=body).content
        for attempt in (1, 2):
            token = await self._tokens.get()
            response = await self._http.request(
                method, path, content=content, headers={**headers, "Authorization": f"Bearer {token}"}
            )
            if response.status_code == 401 and attempt == 1:
                self._tokens.invalidate(token)  # expired early or revoked: one fresh token, once
                continue
            break
        status = response.status_code
        if status < 300 or status in allow:
            return status, _json(response) if response.content else {}
        self._reject(response)

    def _reject(self, response: httpx.Response) -> NoReturn:
        name, issue, message = tf.error_of(_json(response, strict=False))
        raise_rejection(response, code=issue or name, message=message)

    async def aclose(self) -> None:
        await self._http.aclose()


class _VerifierLoop:
    """An event loop on a thread of its own, for the webhook verification call.

    `Gateway.parse_webhook` is synchronous, but PayPal verifies its signatures itself over HTTP:
    the call runs here and the caller waits for it, so it never needs the caller's event loop
    (which, in tests, may be the one serving the fake PayPal). The receiver awaits
    `receive_webhook` instead and never starts this loop."""

    def __init__(self, settings: PayPalSettings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.api: PayPalApi | None = None

    def run(self, coro_factory: Any, timeout: float) -> Any:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="paypal-webhook-verifier", daemon=True).start()
                self._loop = loop
        future = asyncio.run_coroutine_threadsafe(self._call(coro_factory), self._loop)
        return future.result(timeout)

    async def _call(self, coro_factory: Any) -> Any:
        if self.api is None:  # made on this loop: its pool belongs here
            self.api = PayPalApi(self._settings)
        coro: Coroutine[Any, Any, Any] = coro_factory(self.api)
        return await coro

    def close(self) -> None:
        with self._lock:
            loop, self._loop = self._loop, None
        if loop is None:
            return
        if self.api is not None:
            asyncio.run_coroutine_threadsafe(self.api.aclose(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)


class PayPalGateway(Gateway):
    def __init__(self, settings: PayPalSettings) -> None:
        self._settings = settings
        self._api = PayPalApi(settings)
        self._verifier = _VerifierLoop(settings)

    @property
    def profile(self) -> GatewayProfile:
        return GatewayProfile(
            id=GATEWAY_ID,
            name="PayPal",
            methods=["wallet:paypal"],
            currencies=list(self._settings.currencies),
            min_minor=1,
            # Authorize, then capture once, partially if need be (the rest of the hold released).
            supports_partial_capture=True,
            supports_manual_capture=True,
        )

    # ------------------------------------------------------------------ payments

    async def authorize(self, call: AuthorizeCall) -> GatewayResult:
        if not (isinstance(call.method, WalletMethod) and call.method.wallet == "paypal"):
            raise GatewayInvalidRequest("PayPal takes only the PayPal wallet (payment_method wallet=paypal)")
        body = tf.order_body(call, brand_name=self._settings.brand_name)
        _, order = await self._api.call(
            "POST", "/v2/checkout/orders", body=body, request_id=call.idempotency_key
        )
        required_field(order, "id", tf.PROVIDER)
        return await self._current(order)

    async def lookup(self, call: LookupCall) -> GatewayResult:
        # PayPal sends the payer back with the order id (`token`): a place to look, never proof.
        order_id = call.provider_payment_id or call.action_data.get("token")
        if not order_id:
            # PayPal has no search of orders by custom_id / invoice_id, and nobody but us had
            # the approval link of an order whose create answer was lost: no money can move on
            # it. The retried create (same PayPal-Request-Id) is what finds it again.
            return GatewayResult(status=GatewayPaymentStatus.NOT_FOUND)
        order = await self._order(order_id)
        if order is None or tf.payment_id_of(order) != call.payment_id:
            return GatewayResult(status=GatewayPaymentStatus.NOT_FOUND)
        return await self._current(order)

    async def capture(self, call: CaptureCall) -> GatewayResult:
        order = await self._known_order(call.provider_payment_id)
        authorization = tf.open_authorization(order)
        if authorization is None:
            current = tf.order_result(order)
            if current.status is GatewayPaymentStatus.REQUIRES_ACTION:
                raise GatewayInvalidRequest("the payer has not approved the PayPal order yet")
            return current  # captured, voided or declined already: the retried call hears it
        status, capture = await self._api.call(
            "POST",
            f"/v2/payments/authorizations/{authorization['id']}/capture",
            body=tf.capture_body(call.amount, call.payment_id),
            request_id=call.idempotency_key,
            allow=(422,),
        )
        order_id = str(order["id"])
        if status == 422:
            return self._declined_or_reject(order_id, capture)
        capture_status = str(capture.get("status") or "")
        summary = {"capture_status": capture_status}
        if capture_status in ("COMPLETED", "PARTIALLY_REFUNDED", "REFUNDED"):
            return GatewayResult(
                status=GatewayPaymentStatus.SUCCEEDED,
                provider_payment_id=order_id,
                captured_minor=tf.amount_of(capture.get("amount")).minor,
                provider_response=summary,
            )
        if capture_status == "PENDING":
            return GatewayResult(
                status=GatewayPaymentStatus.PROCESSING,
                provider_payment_id=order_id,
                provider_response=summary,
            )
        if capture_status in ("DECLINED", "FAILED"):
            reason = (capture.get("status_details") or {}).get("reason")
            return GatewayResult(
                status=GatewayPaymentStatus.DECLINED,
                provider_payment_id=order_id,
                failure=tf.declined(f"PayPal declined the capture ({reason or capture_status})", reason),
                provider_response=summary,
            )
        raise GatewayOutcomeUnknown(f"PayPal capture in an unknown status {capture_status!r}")

    async def cancel(self, call: CancelCall) -> GatewayResult:
        if not call.provider_payment_id:
            # The create never answered: nobody has the approval link, nothing can be paid.
            return GatewayResult(
                status=GatewayPaymentStatus.CANCELLED, provider_response={"order": "unknown"}
            )
        order = await self._known_order(call.provider_payment_id)
        authorization = tf.open_authorization(order)
        if authorization is not None:
            await self._api.call(
                "POST",
                f"/v2/payments/authorizations/{authorization['id']}/void",
                request_id=call.idempotency_key,
            )
            order = await self._known_order(call.provider_payment_id)
        current = tf.order_result(order)
        if current.status is GatewayPaymentStatus.REQUIRES_ACTION:
            # Orders have no cancel call: an order not approved yet (or approved, not finished)
            # moves no money and expires at PayPal. Marked, so that no later lookup finishes it
            # (the payer may still approve it); a PATCH refused because it was finished meanwhile
            # leaves what PayPal says to decide.
            status, _ = await self._api.call(
                "PATCH",
                f"/v2/checkout/orders/{order['id']}",
                body=tf.cancel_patch(call.payment_id),
                allow=(422,),
            )
            order = await self._known_order(call.provider_payment_id)
            current = tf.order_result(order)
            if status != 422 and current.status is not GatewayPaymentStatus.CANCELLED:
                raise GatewayOutcomeUnknown("PayPal took the cancel mark but does not show it")
        return current  # voided now, or paid / declined already: what PayPal says decides

    # ------------------------------------------------------------------ refunds

    async def refund(self, call: RefundCall) -> RefundResult:
        order = await self._known_order(call.provider_payment_id)
        capture = tf.completed_capture(order)
        if capture is None:
            raise GatewayInvalidRequest("the PayPal order has no completed capture to refund")
        _, refund = await self._api.call(
            "POST",
            f"/v2/payments/captures/{capture['id']}/refund",
            body=tf.refund_body(call),
            request_id=call.idempotency_key,
        )
        required_field(refund, "id", tf.PROVIDER)
        return tf.refund_result(refund, call.refund_id)

    async def lookup_refund(self, call: RefundLookupCall) -> RefundResult:
        if call.provider_refund_id:
            status, refund = await self._api.call(
                "GET", f"/v2/payments/refunds/{call.provider_refund_id}", allow=(404,)
            )
            if status != 404:
                return tf.refund_result(refund, call.refund_id)
        order = await self._known_order(call.provider_payment_id)
        refunds = tf.refunds_of(order)
        for refund in refunds:
            if refund.get("custom_id") == call.refund_id:
                return tf.refund_result(refund, call.refund_id)
        return RefundResult(
            refund_id=call.refund_id,
            status=RefundStatus.FAILED,
            failure=Failure(code="refund_not_found", message="PayPal has no such refund on the order"),
        )

    # ------------------------------------------------------------------ webhooks

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[GatewayEvent]:
        event, request = self._webhook_to_verify(headers, body)
        with _verification_failures():
            answer = self._verifier.run(
                lambda api: _verify(api, request), timeout=self._webhook_verify_timeout()
            )
        return _verified_events(event, answer)

    async def receive_webhook(self, headers: Mapping[str, str], body: bytes) -> list[GatewayEvent]:
        """As `parse_webhook`, awaiting PayPal's answer on the caller's loop: no thread, no second
        loop, and the adapter's own connection pool and token."""
        event, request = self._webhook_to_verify(headers, body)
        with _verification_failures():
            async with asyncio.timeout(self._webhook_verify_timeout()):
                answer = await _verify(self._api, request)
        return _verified_events(event, answer)

    def _webhook_to_verify(self, headers: Mapping[str, str], body: bytes) -> tuple[dict[str, Any], bytes]:
        """The event and PayPal's verification request for it; the local checks (headers, age,
        shape) first, so that a stale or malformed delivery costs no call."""
        transmission = wh.transmission_of(headers, window_seconds=self._settings.webhook_tolerance_seconds)
        event = wh.parse_event(body)
        return event, wh.verification_request(transmission, self._settings.webhook_id, body)

    def _webhook_verify_timeout(self) -> float:
        http = self._settings.http
        return http.connect_timeout_seconds + http.timeout_seconds + 5

    async def aclose(self) -> None:
        await self._api.aclose()
        await asyncio.to_thread(self._verifier.close)

    # ------------------------------------------------------------------ helpers

    async def _order(self, order_id: str) -> dict[str, Any] | None:
        status, order = await self._api.call("GET", f"/v2/checkout/orders/{order_id}", allow=(404,))
        return None if status == 404 else order

    async def _known_order(self, order_id: str | None) -> dict[str, Any]:
        order = await self._order(order_id) if order_id else None
        if order is None:
            raise GatewayInvalidRequest(f"PayPal has no order {order_id!r}")
        return order

    async def _current(self, order: dict[str, Any]) -> GatewayResult:
        """The order's state, once an approved order is captured / authorized as its intent says."""
        if order.get("status") != "APPROVED" or tf.cancelled_by_us(order):
            return tf.order_result(order)
        order_id = str(order["id"])
        intent = str(order.get("intent") or "CAPTURE").lower()
        status, finished = await self._api.call(
            "POST",
            f"/v2/checkout/orders/{order_id}/{intent}",
            body={},
            request_id=f"{order_id}-{intent}",
            allow=(422,),
        )
        if status == 422:
            return self._declined_or_reject(order_id, finished)
        return tf.order_result(finished)

    def _declined_or_reject(self, order_id: str, answer: Any) -> GatewayResult:
        name, issue, message = tf.error_of(answer)
        if issue in tf.DECLINE_ISSUES:
            return GatewayResult(
                status=GatewayPaymentStatus.DECLINED,
                provider_payment_id=order_id,
                failure=tf.declined(message or "PayPal declined the payer's funding", issue),
                provider_response={"issue": issue},
            )
        raise GatewayInvalidRequest(f"PayPal refused ({issue or name}): {message}", code=issue or name)


def _json(response: httpx.Response, *, strict: bool = True) -> Any:
    try:
        return response.json()
    except ValueError:
        if strict:
            raise GatewayOutcomeUnknown(
                f"PayPal {response.request.method} {response.request.url.path}: answer is not JSON"
            ) from None
        return None


def build(settings: PayPalSettings) -> PayPalGateway:
    return PayPalGateway(settings)


async def _verify(api: PayPalApi, request: bytes) -> Any:
    _, answer = await api.call("POST", "/v1/notifications/verify-webhook-signature", content=request)
    return answer


@contextlib.contextmanager
def _verification_failures() -> Iterator[None]:
    try:
        yield
    except (GatewayError, TimeoutError) as exc:
        # Not verified is not accepted: PayPal redelivers what we do not acknowledge.
        raise WebhookVerificationError(f"PayPal could not verify the signature: {exc}") from None


def _verified_events(event: Mapping[str, Any], answer: Any) -> list[GatewayEvent]:
    if not wh.verification_succeeded(answer):
        raise WebhookVerificationError("PayPal did not verify the signature")
    return wh.events_of(event, GATEWAY_ID)
