"""Stripe, through the official `stripe` SDK (async client over HTTPX).

One PaymentIntent per payment, created *and confirmed* in one call so that a single idempotency key
covers the whole authorization: a retried activity replays Stripe's saved response instead of
making a second PaymentIntent. Our payment id travels in the PaymentIntent's metadata
(`durapay_payment_id`), which is how a payment whose create response was lost is found again.

The SDK never retries here (`max_network_retries=0`): Temporal owns retries, and every POST carries the
call's own idempotency key, never one the SDK would make up.

Left out on purpose: the legacy Charges/Sources APIs; Connect (`Stripe-Account`); multicapture,
incremental authorization and overcapture; non-card payment method types (the profile offers cards
only, so `statement_descriptor` is never sent: cards take only the suffix); saving a card while paying
(`setup_future_usage`, SetupIntents); `receipt_email`; and Stripe's v2 "thin" events (acknowledged as
UNKNOWN). `charge.refunded` on current API versions names no refund, so `refund.*` events carry the
per-refund news.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

import httpx
import stripe
from stripe import RequestOptions

from activities.gateways.base import (
    Customer,
    Gateway,
    GatewayConfigError,
    GatewayInvalidRequest,
    GatewayOutcomeUnknown,
    GatewayRateLimited,
    GatewayTransientError,
    SavedPaymentMethod,
)
from activities.gateways.http import parse_retry_after
from activities.gateways.stripe import GATEWAY_ID
from activities.gateways.stripe.settings import StripeSettings
from activities.gateways.stripe.transform import (
    METADATA_PAYMENT_ID,
    METADATA_REFUND_ID,
    cancel_params,
    declined_result,
    intent_params,
    intent_result,
    refund_params,
    refund_result,
    saved_method,
    stripe_amount,
)
from activities.gateways.stripe.webhooks import events_of, verified_event

if TYPE_CHECKING:
    from stripe.params import (
        CustomerCreateParams,
        CustomerPaymentMethodListParams,
        PaymentIntentCancelParams,
        PaymentIntentCreateParams,
        RefundCreateParams,
        RefundListParams,
    )

from workflows.domain import (
    Failure,
    GatewayProfile,
    NextActionType,
    RefundStatus,
)
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

_IDEMPOTENCY_KEY_MAX = 255


# --- amounts -----------------------------------------------------------------------------------


# --- settings ------------------------------------------------------------------------------------


# --- the gateway -----------------------------------------------------------------------------------

# httpx failures that happen before a byte of the request left: safe to call transient.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    if not headers:
        return None
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def translate_error(exc: stripe.StripeError, *, mutating: bool) -> Exception:
    """A Stripe SDK error -> the gateway error the activity layer understands.

    Card errors are not handled here: they are business outcomes, returned as DECLINED results.
    `mutating` says whether the request could have changed something at Stripe (a POST).
    """
    if isinstance(exc, stripe.RateLimitError):
        return GatewayRateLimited(
            f"Stripe rate limit: {exc.user_message or 'too many requests'}",
            retry_after=parse_retry_after(_header(exc.headers, "Retry-After")),
        )
    if isinstance(exc, stripe.APIConnectionError):
        cause = exc.__cause__
        if isinstance(cause, _NOT_SENT) or not mutating:
            return GatewayTransientError(f"cannot reach Stripe ({type(cause).__name__})")
        # Sent, but no answer (timeout, dropped connection): it may have been executed.
        return GatewayOutcomeUnknown(f"no answer from Stripe ({type(cause).__name__})")
    if isinstance(exc, stripe.IdempotencyError):
        # Our key was used before with other parameters: that first request may have charged, so
        # this is no proof that nothing happened. Unknown: the workflow asks Stripe what there is.
        return GatewayOutcomeUnknown(f"Stripe idempotency error (key used before): {exc.user_message}")
    if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
        return GatewayConfigError(f"Stripe refused our credentials: {exc.user_message}")
    if isinstance(exc, stripe.InvalidRequestError):
        return GatewayInvalidRequest(
            f"Stripe rejected the request: {exc.user_message}"
            + (f" (param {exc.param})" if exc.param else ""),
            code=exc.code or "invalid_request",
        )
    status = exc.http_status or 0
    should_retry = _header(exc.headers, "Stripe-Should-Retry")
    if not mutating or status in (409, 503) or should_retry == "true":
        # 409: another request with our key is still running. 503 and `Stripe-Should-Retry: true`:
        # Stripe did not start the work. A retry is safe and may well succeed.
        return GatewayTransientError(f"Stripe is unavailable (HTTP {status or 'error'})")
    # Any other 5xx on a POST may have done its work, and Stripe saves it under the key and replays
    # it: only the workflow's lookup can tell.
    return GatewayOutcomeUnknown(f"Stripe failed (HTTP {status or 'error'}) and may have acted")


def _as_dict(obj: Any) -> dict[str, Any]:
    return obj.to_dict() if isinstance(obj, stripe.StripeObject) else dict(obj)


class StripeGateway(Gateway):
    def __init__(self, settings: StripeSettings, *, gateway_id: str = GATEWAY_ID) -> None:
        self._settings = settings
        self._profile = GatewayProfile(
            id=gateway_id,
            name="Stripe",
            methods=["card"],
            currencies=list(settings.currencies),
            min_minor=settings.min_minor,
            max_minor=settings.max_minor,
            supports_partial_capture=True,
            supports_manual_capture=True,
            # 3-D Secure (redirect or in-page): `payment_intent.*` webhooks tell every outcome.
            notified_actions=[NextActionType.REDIRECT_TO_URL, NextActionType.USE_SDK],
        )
        self._http = stripe.HTTPXClient(
            timeout=httpx.Timeout(settings.timeout_seconds, connect=settings.connect_timeout_seconds)
        )
        self._client = stripe.StripeClient(
            settings.secret_key.get_secret_value(),
            base_addresses={"api": settings.api_base.rstrip("/")},
            stripe_version=settings.api_version,
            max_network_retries=settings.max_network_retries,
            http_client=self._http,
        )

    def __repr__(self) -> str:
        return f"StripeGateway(id={self.id!r}, api_base={self._settings.api_base!r})"

    @property
    def profile(self) -> GatewayProfile:
        return self._profile

    @property
    def settings(self) -> StripeSettings:
        return self._settings

    # -- plumbing ---------------------------------------------------------------------------------

    async def _send(self, request: Callable[[], Awaitable[Any]], *, mutating: bool) -> dict[str, Any]:
        """Run one SDK call; every failure but a card error leaves as a gateway error."""
        try:
            return _as_dict(await request())
        except stripe.CardError:
            raise
        except stripe.StripeError as exc:
            raise translate_error(exc, mutating=mutating) from exc

    @staticmethod
    def _options(idempotency_key: str) -> RequestOptions:
        if not idempotency_key or len(idempotency_key) > _IDEMPOTENCY_KEY_MAX:
            raise GatewayInvalidRequest(f"idempotency key must be 1..{_IDEMPOTENCY_KEY_MAX} characters")
        return {"idempotency_key": idempotency_key}

    def _result(self, intent: Mapping[str, Any]) -> GatewayResult:
        return intent_result(intent, self._settings.publishable_key)

    def _declined(self, exc: stripe.CardError) -> GatewayResult:
        body = exc.json_body if isinstance(exc.json_body, dict) else {}
        return declined_result(body.get("error") or {}, self._settings.publishable_key)

    async def _find_intent(self, payment_id: str) -> dict[str, Any] | None:
        """Our payment's PaymentIntent by metadata, for when its id never reached us.

        Stripe's search is eventually consistent (normally under a minute): a retried create with
        the same idempotency key is the first way back; this is the last."""
        query = f"metadata['{METADATA_PAYMENT_ID}']:'{payment_id}'"
        found = await self._send(
            lambda: self._client.v1.payment_intents.search_async({"query": query, "limit": 10}),
            mutating=False,
        )
        intents = found.get("data") or []
        if not intents:
            return None
        # One key makes one intent; should there be more, the one that moved money wins, then the newest.
        rank = {"succeeded": 3, "requires_capture": 2, "processing": 1}
        return max(intents, key=lambda pi: (rank.get(pi.get("status"), 0), pi.get("created", 0)))

    def _unless_search_may_lag(self, call: LookupCall) -> None:
        """An empty Search proves nothing until the index has caught up with the payment: "never
        made" then would fail a payment whose charge is only not indexed yet. Ask again instead
        (the lookup activity retries with backoff and never gives up)."""
        if call.created_at is None:
            return  # a caller that cannot say how young the payment is gets Search's word
        age = (datetime.now(UTC) - call.created_at).total_seconds()
        if age < self._settings.search_lag_seconds:
            raise GatewayTransientError(
                f"no PaymentIntent for {call.payment_id} in Stripe's search, which may not have "
                f"indexed it yet ({age:.0f} s after the payment was created); asking again"
            )

    async def _intent_id(self, payment_id: str, provider_payment_id: str | None) -> str | None:
        if provider_payment_id:
            return provider_payment_id
        intent = await self._find_intent(payment_id)
        return intent["id"] if intent else None

    async def _retrieve(self, intent_id: str) -> dict[str, Any]:
        return await self._send(
            lambda: self._client.v1.payment_intents.retrieve_async(intent_id), mutating=False
        )

    # -- payments ---------------------------------------------------------------------------------

    async def authorize(self, call: AuthorizeCall) -> GatewayResult:
        params = intent_params(call, self._settings)
        options = self._options(call.idempotency_key)
        try:
            intent = await self._send(
                lambda: self._client.v1.payment_intents.create_async(
                    cast("PaymentIntentCreateParams", params), options
                ),
                mutating=True,
            )
        except stripe.CardError as exc:
            return self._declined(exc)
        return self._result(intent)

    async def capture(self, call: CaptureCall) -> GatewayResult:
        options = self._options(call.idempotency_key)
        amount = stripe_amount(call.amount, self._settings)
        intent_id = await self._intent_id(call.payment_id, call.provider_payment_id)
        if intent_id is None:
            return GatewayResult(status=GatewayPaymentStatus.NOT_FOUND)
        try:
            intent = await self._send(
                lambda: self._client.v1.payment_intents.capture_async(
                    intent_id, {"amount_to_capture": amount}, options
                ),
                mutating=True,
            )
        except stripe.CardError as exc:
            return self._declined(exc)
        except GatewayInvalidRequest as exc:
            return await self._current_state_if_moved_on(intent_id, exc)
        return self._result(intent)

    async def cancel(self, call: CancelCall) -> GatewayResult:
        options = self._options(call.idempotency_key)
        intent_id = await self._intent_id(call.payment_id, call.provider_payment_id)
        if intent_id is None:
            return GatewayResult(status=GatewayPaymentStatus.NOT_FOUND)
        params = cancel_params(call.reason)
        try:
            intent = await self._send(
                lambda: self._client.v1.payment_intents.cancel_async(
                    intent_id, cast("PaymentIntentCancelParams", params), options
                ),
                mutating=True,
            )
        except GatewayInvalidRequest as exc:
            return await self._current_state_if_moved_on(intent_id, exc)
        return self._result(intent)

    async def _current_state_if_moved_on(self, intent_id: str, exc: GatewayInvalidRequest) -> GatewayResult:
        """Capture or cancel refused because the intent is no longer in a state that allows it (e.g.
        it was captured, or it expired): the truthful answer is its current state."""
        if exc.code != "payment_intent_unexpected_state":
            raise exc
        return self._result(await self._retrieve(intent_id))

    async def lookup(self, call: LookupCall) -> GatewayResult:
        # `call.action_data` (what the customer's return carried) is never trusted: ask Stripe.
        if call.provider_payment_id:
            try:
                intent = await self._retrieve(call.provider_payment_id)
            except GatewayInvalidRequest as exc:
                if exc.code != "resource_missing":
                    raise
                return GatewayResult(status=GatewayPaymentStatus.NOT_FOUND)
        else:
            found = await self._find_intent(call.payment_id)
            if found is None:
                self._unless_search_may_lag(call)
                return GatewayResult(status=GatewayPaymentStatus.NOT_FOUND)
            intent = found
        metadata = intent.get("metadata") or {}
        if metadata.get(METADATA_PAYMENT_ID) not in (None, call.payment_id):
            raise GatewayInvalidRequest(
                f"PaymentIntent {intent.get('id')} belongs to another payment", code="payment_mismatch"
            )
        return self._result(intent)

    # -- refunds ----------------------------------------------------------------------------------

    async def refund(self, call: RefundCall) -> RefundResult:
        options = self._options(call.idempotency_key)
        stripe_amount(call.amount, self._settings)  # refused before anything is sent
        intent_id = await self._intent_id(call.payment_id, call.provider_payment_id)
        if intent_id is None:
            raise GatewayInvalidRequest(f"no Stripe payment for {call.payment_id}", code="payment_not_found")
        params = refund_params(call, intent_id, self._settings)
        refund = await self._send(
            lambda: self._client.v1.refunds.create_async(cast("RefundCreateParams", params), options),
            mutating=True,
        )
        return refund_result(call.refund_id, refund)

    async def lookup_refund(self, call: RefundLookupCall) -> RefundResult:
        if (provider_refund_id := call.provider_refund_id) is not None:
            refund = await self._send(
                lambda: self._client.v1.refunds.retrieve_async(provider_refund_id), mutating=False
            )
            return refund_result(call.refund_id, refund)
        intent_id = await self._intent_id(call.payment_id, call.provider_payment_id)
        if intent_id is not None:
            async for refund in self._refunds_of(intent_id):
                if (refund.get("metadata") or {}).get(METADATA_REFUND_ID) == call.refund_id:
                    return refund_result(call.refund_id, refund)
        return RefundResult(
            refund_id=call.refund_id,
            status=RefundStatus.FAILED,
            failure=Failure(code="refund_not_found", message="Stripe has no refund under this id"),
        )

    async def _refunds_of(self, intent_id: str):
        params: dict[str, Any] = {"payment_intent": intent_id, "limit": 100}
        while True:
            page = await self._send(
                lambda: self._client.v1.refunds.list_async(cast("RefundListParams", dict(params))),
                mutating=False,
            )
            refunds = page.get("data") or []
            for refund in refunds:
                yield refund
            if not page.get("has_more") or not refunds:
                return
            params["starting_after"] = refunds[-1]["id"]

    # -- customers and saved payment methods -----------------------------------------------------------

    async def create_customer(self, *, email: str | None, name: str | None, idempotency_key: str) -> Customer:
        params = {key: value for key, value in (("email", email), ("name", name)) if value}
        options = self._options(idempotency_key)
        customer = await self._send(
            lambda: self._client.v1.customers.create_async(cast("CustomerCreateParams", params), options),
            mutating=True,
        )
        return Customer(id=customer["id"], email=customer.get("email"), name=customer.get("name"))

    async def attach_payment_method(self, *, customer_id: str, payment_method: str) -> SavedPaymentMethod:
        # A detached PaymentMethod can never be attached again, so (method, customer) names this
        # operation for good: a derived key, not a random one.
        options = self._options(f"attach:{payment_method}:{customer_id}")
        saved = await self._send(
            lambda: self._client.v1.payment_methods.attach_async(
                payment_method, {"customer": customer_id}, options
            ),
            mutating=True,
        )
        return saved_method(saved)

    async def list_payment_methods(self, *, customer_id: str) -> list[SavedPaymentMethod]:
        methods: list[SavedPaymentMethod] = []
        params: dict[str, Any] = {"type": "card", "limit": 100}
        while True:
            page = await self._send(
                lambda: self._client.v1.customers.payment_methods.list_async(
                    customer_id, cast("CustomerPaymentMethodListParams", dict(params))
                ),
                mutating=False,
            )
            items = page.get("data") or []
            methods.extend(saved_method(item) for item in items)
            if not page.get("has_more") or not items:
                return methods
            params["starting_after"] = items[-1]["id"]

    async def detach_payment_method(self, *, payment_method: str) -> SavedPaymentMethod:
        options = self._options(f"detach:{payment_method}")
        detached = await self._send(
            lambda: self._client.v1.payment_methods.detach_async(payment_method, options=options),
            mutating=True,
        )
        return saved_method(detached)

    # -- webhooks -----------------------------------------------------------------------------------

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[GatewayEvent]:
        return events_of(verified_event(_header(headers, "Stripe-Signature"), body, self._settings), self.id)

    async def aclose(self) -> None:
        await self._http.close_async()


def build(settings: StripeSettings) -> StripeGateway:
    """The registry's factory."""
    return StripeGateway(settings)
