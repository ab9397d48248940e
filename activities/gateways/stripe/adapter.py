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

import json
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
import stripe

from activities.gateways.base import (
    Customer,
    Gateway,
    GatewayConfigError,
    GatewayInvalidRequest,
    GatewayOutcomeUnknown,
    GatewayRateLimited,
    GatewayTransientError,
    SavedPaymentMethod,
    WebhookVerificationError,
)
from activities.gateways.http import parse_retry_after
from activities.gateways.stripe import GATEWAY_ID
from activities.gateways.stripe.settings import StripeSettings
from workflows.domain import (
    CaptureMethod,
    CardMethod,
    Failure,
    GatewayProfile,
    NextAction,
    NextActionType,
    RefundStatus,
)
from workflows.gateway_io import (
    AuthorizeCall,
    CancelCall,
    CaptureCall,
    GatewayEvent,
    GatewayEventKind,
    GatewayPaymentStatus,
    GatewayResult,
    LookupCall,
    RefundCall,
    RefundLookupCall,
    RefundResult,
)
from workflows.money import Amount, MoneyError, exponent, is_known_currency

METADATA_PAYMENT_ID = "durapay_payment_id"
METADATA_ORDER_ID = "durapay_order_id"
METADATA_REFUND_ID = "durapay_refund_id"
METADATA_REFUND_REASON = "durapay_refund_reason"


# https://docs.stripe.com/currencies: where Stripe's unit differs from ISO 4217's minor unit.
_ZERO_DECIMAL = frozenset(
    [
        "BIF",
        "CLP",
        "DJF",
        "GNF",
        "JPY",
        "KMF",
        "KRW",
        "MGA",
        "PYG",
        "RWF",
        "UGX",
        "VND",
        "VUV",
        "XAF",
        "XOF",
        "XPF",
    ]
)
_THREE_DECIMAL = frozenset(["BHD", "JOD", "KWD", "OMR", "TND"])
# Zero-decimal in practice, but the API still takes it with two decimals for backwards compatibility.
_SENT_WITH_TWO_DECIMALS = frozenset({"ISK"})

_CANCELLATION_REASONS = frozenset({"duplicate", "fraudulent", "requested_by_customer", "abandoned"})
_REFUND_REASONS = frozenset({"duplicate", "fraudulent", "requested_by_customer"})
_IDEMPOTENCY_KEY_MAX = 255


# --- amounts -----------------------------------------------------------------------------------


def stripe_exponent(currency: str) -> int:
    """The number of decimals Stripe's `amount` integers carry for `currency`."""
    code = currency.upper()
    if code in _SENT_WITH_TWO_DECIMALS:
        return 2
    if code in _ZERO_DECIMAL:
        return 0
    if code in _THREE_DECIMAL:
        return 3
    return 2


def to_stripe_amount(amount: Amount) -> int:
    """Our minor units (ISO 4217) -> Stripe's integer. Refuses, never rounds."""
    code = amount.currency
    shift = stripe_exponent(code) - exponent(code)
    if shift >= 0:
        value = amount.minor * 10**shift
    else:
        factor = 10**-shift
        if amount.minor % factor:
            raise GatewayInvalidRequest(
                f"{amount} cannot be charged through Stripe: it takes {code} in whole units",
                code="amount_precision",
            )
        value = amount.minor // factor
    if code in _THREE_DECIMAL and value % 10:
        raise GatewayInvalidRequest(
            f"{amount} cannot be charged through Stripe: three-decimal {code} amounts must end in 0",
            code="amount_precision",
        )
    return value


def from_stripe_amount(value: int, currency: str) -> Amount:
    """Stripe's integer -> our `Amount`."""
    code = currency.upper()
    shift = stripe_exponent(code) - exponent(code)
    if shift >= 0:
        factor = 10**shift
        if value % factor:
            raise MoneyError(f"Stripe amount {value} {code} is not a whole number of {code} minor units")
        return Amount(minor=value // factor, currency=code)
    return Amount(minor=value * 10**-shift, currency=code)


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
        # Our key with other parameters: a bug on our side that no retry can fix.
        return GatewayInvalidRequest(
            f"Stripe idempotency error: {exc.user_message}", code="idempotency_error"
        )
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


def _failure_from_error(error: Mapping[str, Any] | None) -> Failure:
    error = error or {}
    code = error.get("code")
    message = error.get("message") or "The payment was declined."
    if error.get("type") == "card_error":
        return Failure(code="card_declined", message=message, decline_code=error.get("decline_code") or code)
    if code == "payment_intent_authentication_failure":
        return Failure(code="authentication_failed", message=message)
    return Failure(code=code or "payment_failed", message=message, decline_code=error.get("decline_code"))


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
    def _options(idempotency_key: str) -> dict[str, str]:
        if not idempotency_key or len(idempotency_key) > _IDEMPOTENCY_KEY_MAX:
            raise GatewayInvalidRequest(f"idempotency key must be 1..{_IDEMPOTENCY_KEY_MAX} characters")
        return {"idempotency_key": idempotency_key}

    def _check_amount(self, amount: Amount) -> int:
        if amount.currency not in self._profile.currencies:
            raise GatewayInvalidRequest(
                f"Stripe is not configured for {amount.currency}", code="currency_not_supported"
            )
        return to_stripe_amount(amount)

    def _result(self, intent: Mapping[str, Any]) -> GatewayResult:
        """A PaymentIntent -> the workflow's view of it."""
        status = intent.get("status")
        currency = str(intent.get("currency", "")).upper()
        summary = {"status": str(status), "payment_intent": str(intent.get("id"))}
        if intent.get("latest_charge"):
            charge = intent["latest_charge"]
            summary["charge"] = str(charge["id"] if isinstance(charge, Mapping) else charge)
        error = intent.get("last_payment_error")
        if error:
            summary["last_error_code"] = str(error.get("code"))
            if error.get("decline_code"):
                summary["decline_code"] = str(error["decline_code"])

        def minor(field: str) -> int:
            return from_stripe_amount(int(intent.get(field) or 0), currency).minor

        base = {"provider_payment_id": intent.get("id"), "provider_response": summary}
        if status == "succeeded":
            return GatewayResult(
                status=GatewayPaymentStatus.SUCCEEDED,
                authorized_minor=minor("amount"),
                captured_minor=minor("amount_received"),
                **base,
            )
        if status == "requires_capture":
            return GatewayResult(
                status=GatewayPaymentStatus.AUTHORIZED, authorized_minor=minor("amount_capturable"), **base
            )
        if status == "requires_action":
            return GatewayResult(
                status=GatewayPaymentStatus.REQUIRES_ACTION, next_action=self._next_action(intent), **base
            )
        if status == "processing":
            return GatewayResult(status=GatewayPaymentStatus.PROCESSING, **base)
        if status == "canceled":
            if intent.get("cancellation_reason"):
                summary["cancellation_reason"] = str(intent["cancellation_reason"])
            return GatewayResult(status=GatewayPaymentStatus.CANCELLED, **base)
        # requires_payment_method (a failed attempt) or requires_confirmation: we always confirm on
        # create, so either way no money moved and none will without a new attempt.
        return GatewayResult(status=GatewayPaymentStatus.DECLINED, failure=_failure_from_error(error), **base)

    def _next_action(self, intent: Mapping[str, Any]) -> NextAction:
        action = intent.get("next_action") or {}
        kind = action.get("type")
        if kind == "redirect_to_url":
            redirect = action.get("redirect_to_url") or {}
            data = {"return_url": redirect["return_url"]} if redirect.get("return_url") else {}
            return NextAction(type=NextActionType.REDIRECT_TO_URL, url=redirect.get("url"), data=data)
        # use_stripe_sdk and anything newer: Stripe.js finishes it in the customer's browser, which
        # needs the client secret. It grants client-side access to this one PaymentIntent only and is
        # meant to be handed to the customer, unlike the API keys.
        data = {"stripe_action": str(kind), "payment_intent": str(intent.get("id"))}
        if intent.get("client_secret"):
            data["client_secret"] = str(intent["client_secret"])
        if self._settings.publishable_key:
            data["publishable_key"] = self._settings.publishable_key
        return NextAction(type=NextActionType.USE_SDK, data=data)

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
        method = call.method
        if not isinstance(method, CardMethod):
            raise GatewayInvalidRequest(
                f"Stripe here takes cards only, not {method.type}", code="method_not_supported"
            )
        options = self._options(call.idempotency_key)
        metadata = {**call.metadata, METADATA_PAYMENT_ID: call.payment_id, METADATA_ORDER_ID: call.order_id}
        if any("[" in key or "]" in key for key in metadata):
            raise GatewayInvalidRequest("Stripe metadata keys cannot contain square brackets")
        params: dict[str, Any] = {
            "amount": self._check_amount(call.amount),
            "currency": call.amount.currency.lower(),
            "confirm": True,
            "capture_method": CaptureMethod.AUTOMATIC.value if call.capture else CaptureMethod.MANUAL.value,
            "payment_method_types": ["card"],
            "payment_method_options": {
                "card": {"request_three_d_secure": "any" if call.request_three_ds else "automatic"}
            },
            "metadata": metadata,
        }
        if method.token.startswith("tok_"):
            # A card token (Stripe.js v2 / mobile SDKs): PaymentIntents take it via payment_method_data.
            params["payment_method_data"] = {"type": "card", "card": {"token": method.token}}
        else:
            params["payment_method"] = method.token
        if call.customer_id and call.customer_id.startswith("cus_"):
            # A saved PaymentMethod can only be used together with the Stripe customer it belongs to;
            # any other customer id is the merchant's own and means nothing to Stripe.
            params["customer"] = call.customer_id
        if call.return_url:
            params["return_url"] = call.return_url
        if call.description:
            params["description"] = call.description
        # Not sent: `receipt_email` (Stripe would email its own receipts, which is the merchant's
        # call, not ours) and the customer's IP (card PaymentIntents have no field for it; Radar
        # learns it from Stripe.js in the customer's browser).
        if self._settings.statement_descriptor_suffix:
            # Card payments take only the dynamic suffix; the prefix is the account's descriptor.
            params["statement_descriptor_suffix"] = self._settings.statement_descriptor_suffix
        try:
            intent = await self._send(
                lambda: self._client.v1.payment_intents.create_async(params, options), mutating=True
            )
        except stripe.CardError as exc:
            return self._declined(exc)
        return self._result(intent)

    def _declined(self, exc: stripe.CardError) -> GatewayResult:
        """A card error (HTTP 402): final, no money moved. Stripe attaches the failed intent."""
        body = exc.json_body if isinstance(exc.json_body, dict) else {}
        error = body.get("error") or {}
        intent = error.get("payment_intent")
        if isinstance(intent, Mapping) and intent.get("id"):
            result = self._result(intent)
            if result.status is GatewayPaymentStatus.DECLINED:
                return result.model_copy(update={"failure": _failure_from_error(error)})
        summary = {"status": "card_error", "code": str(error.get("code"))}
        if error.get("decline_code"):
            summary["decline_code"] = str(error["decline_code"])
        return GatewayResult(
            status=GatewayPaymentStatus.DECLINED,
            provider_payment_id=intent.get("id") if isinstance(intent, Mapping) else None,
            failure=_failure_from_error({"type": "card_error", **error}),
            provider_response=summary,
        )

    async def capture(self, call: CaptureCall) -> GatewayResult:
        options = self._options(call.idempotency_key)
        amount = self._check_amount(call.amount)
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
        # Stripe knows four reasons; any other stays ours and the intent is cancelled without one.
        params = {"cancellation_reason": call.reason} if call.reason in _CANCELLATION_REASONS else {}
        try:
            intent = await self._send(
                lambda: self._client.v1.payment_intents.cancel_async(intent_id, params, options),
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
        amount = self._check_amount(call.amount)
        intent_id = await self._intent_id(call.payment_id, call.provider_payment_id)
        if intent_id is None:
            raise GatewayInvalidRequest(f"no Stripe payment for {call.payment_id}", code="payment_not_found")
        metadata = {METADATA_REFUND_ID: call.refund_id, METADATA_PAYMENT_ID: call.payment_id}
        params: dict[str, Any] = {"payment_intent": intent_id, "amount": amount, "metadata": metadata}
        if call.reason:
            if call.reason in _REFUND_REASONS:
                params["reason"] = call.reason
            else:
                # Free text has no place in Stripe's reason enum; keep it with the refund anyway.
                metadata[METADATA_REFUND_REASON] = call.reason[:500]
        refund = await self._send(
            lambda: self._client.v1.refunds.create_async(params, options), mutating=True
        )
        return self._refund_result(call.refund_id, refund)

    async def lookup_refund(self, call: RefundLookupCall) -> RefundResult:
        if call.provider_refund_id:
            refund = await self._send(
                lambda: self._client.v1.refunds.retrieve_async(call.provider_refund_id), mutating=False
            )
            return self._refund_result(call.refund_id, refund)
        intent_id = await self._intent_id(call.payment_id, call.provider_payment_id)
        if intent_id is not None:
            async for refund in self._refunds_of(intent_id):
                if (refund.get("metadata") or {}).get(METADATA_REFUND_ID) == call.refund_id:
                    return self._refund_result(call.refund_id, refund)
        return RefundResult(
            refund_id=call.refund_id,
            status=RefundStatus.FAILED,
            failure=Failure(code="refund_not_found", message="Stripe has no refund under this id"),
        )

    async def _refunds_of(self, intent_id: str):
        params: dict[str, Any] = {"payment_intent": intent_id, "limit": 100}
        while True:
            page = await self._send(lambda: self._client.v1.refunds.list_async(dict(params)), mutating=False)
            refunds = page.get("data") or []
            for refund in refunds:
                yield refund
            if not page.get("has_more") or not refunds:
                return
            params["starting_after"] = refunds[-1]["id"]

    @staticmethod
    def _refund_result(refund_id: str, refund: Mapping[str, Any]) -> RefundResult:
        status = refund.get("status")
        if status == "succeeded":
            return RefundResult(
                refund_id=refund_id, status=RefundStatus.SUCCEEDED, provider_refund_id=refund["id"]
            )
        if status in ("failed", "canceled"):
            reason = refund.get("failure_reason") or status
            return RefundResult(
                refund_id=refund_id,
                status=RefundStatus.FAILED,
                provider_refund_id=refund["id"],
                failure=Failure(code="refund_failed", message=f"Stripe refund {status}: {reason}"),
            )
        # pending / requires_action: the outcome arrives by webhook (refund.updated / refund.failed).
        return RefundResult(
            refund_id=refund_id, status=RefundStatus.PENDING, provider_refund_id=refund.get("id")
        )

    # -- customers and saved payment methods -----------------------------------------------------------

    async def create_customer(self, *, email: str | None, name: str | None, idempotency_key: str) -> Customer:
        params = {key: value for key, value in (("email", email), ("name", name)) if value}
        options = self._options(idempotency_key)
        customer = await self._send(
            lambda: self._client.v1.customers.create_async(params, options), mutating=True
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
        return _saved_method(saved)

    async def list_payment_methods(self, *, customer_id: str) -> list[SavedPaymentMethod]:
        methods: list[SavedPaymentMethod] = []
        params: dict[str, Any] = {"type": "card", "limit": 100}
        while True:
            page = await self._send(
                lambda: self._client.v1.customers.payment_methods.list_async(customer_id, dict(params)),
                mutating=False,
            )
            items = page.get("data") or []
            methods.extend(_saved_method(item) for item in items)
            if not page.get("has_more") or not items:
                return methods
            params["starting_after"] = items[-1]["id"]

    async def detach_payment_method(self, *, payment_method: str) -> SavedPaymentMethod:
        options = self._options(f"detach:{payment_method}")
        detached = await self._send(
            lambda: self._client.v1.payment_methods.detach_async(payment_method, options=options),
            mutating=True,
        )
        return _saved_method(detached)

    # -- webhooks -----------------------------------------------------------------------------------

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[GatewayEvent]:
        self._verify_signature(_header(headers, "Stripe-Signature"), body)
        try:
            event = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise WebhookVerificationError("Stripe webhook body is not JSON") from exc
        if not isinstance(event, dict) or not isinstance(event.get("id"), str) or not event.get("type"):
            raise WebhookVerificationError("Stripe webhook body is not an event")
        return self._events(event)

    def _verify_signature(self, header: str | None, body: bytes) -> None:
        if not header:
            raise WebhookVerificationError("missing Stripe-Signature header")
        try:
            payload = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise WebhookVerificationError("Stripe webhook body is not UTF-8") from exc
        tolerance = self._settings.webhook_tolerance_seconds
        verified = False
        for secret in self._settings.webhook_secret:
            try:
                stripe.WebhookSignature.verify_header(payload, header, secret.get_secret_value(), tolerance)
            except stripe.SignatureVerificationError:
                continue
            verified = True
            break
        if not verified:
            raise WebhookVerificationError("Stripe-Signature does not match, or its timestamp is too old")
        # The SDK bounds only the past. A timestamp far in the future is no clock skew we should
        # honour: it would let a captured request be replayed for as long as it claims.
        timestamp = _signature_timestamp(header)
        if timestamp > time.time() + tolerance:
            raise WebhookVerificationError("Stripe-Signature timestamp is in the future")

    def _events(self, event: Mapping[str, Any]) -> list[GatewayEvent]:
        kind_of_type = event["type"]
        obj = ((event.get("data") or {}).get("object")) or {}
        created = event.get("created")
        common: dict[str, Any] = {
            "gateway": self.id,
            "event_id": event["id"],
            "provider_type": kind_of_type,
            "occurred_at": datetime.fromtimestamp(created, UTC) if isinstance(created, int | float) else None,
        }
        if event.get("object") != "event" or not isinstance(obj, Mapping):
            return [GatewayEvent(kind=GatewayEventKind.UNKNOWN, **common)]
        if kind_of_type.startswith("payment_intent."):
            return [self._intent_event(kind_of_type, obj, common)]
        if kind_of_type in ("refund.created", "refund.updated", "refund.failed"):
            return [self._refund_event(obj, common)]
        if kind_of_type == "charge.refunded":
            return self._charge_refunded_events(obj, common)
        if kind_of_type in ("charge.dispute.created", "charge.dispute.closed"):
            return [self._dispute_event(kind_of_type, obj, common)]
        return [GatewayEvent(kind=GatewayEventKind.UNKNOWN, **common)]

    def _intent_event(
        self, event_type: str, intent: Mapping[str, Any], common: dict[str, Any]
    ) -> GatewayEvent:
        kinds = {
            "payment_intent.succeeded": (GatewayEventKind.PAYMENT_SUCCEEDED, "amount_received"),
            "payment_intent.amount_capturable_updated": (
                GatewayEventKind.PAYMENT_AUTHORIZED,
                "amount_capturable",
            ),
            "payment_intent.payment_failed": (GatewayEventKind.PAYMENT_FAILED, "amount"),
            "payment_intent.requires_action": (GatewayEventKind.PAYMENT_REQUIRES_ACTION, "amount"),
            "payment_intent.processing": (GatewayEventKind.PAYMENT_PROCESSING, "amount"),
            "payment_intent.canceled": (GatewayEventKind.PAYMENT_CANCELLED, "amount"),
        }
        kind, amount_field = kinds.get(event_type, (GatewayEventKind.UNKNOWN, "amount"))
        return GatewayEvent(
            kind=kind,
            payment_id=(intent.get("metadata") or {}).get(METADATA_PAYMENT_ID),
            provider_payment_id=intent.get("id"),
            amount=_amount(intent.get(amount_field), intent.get("currency")),
            failure=_failure_from_error(intent.get("last_payment_error"))
            if kind is GatewayEventKind.PAYMENT_FAILED
            else None,
            **common,
        )

    def _refund_event(self, refund: Mapping[str, Any], common: dict[str, Any]) -> GatewayEvent:
        status = refund.get("status")
        metadata = refund.get("metadata") or {}
        failure = None
        if status == "succeeded":
            kind = GatewayEventKind.REFUND_SUCCEEDED
        elif status in ("failed", "canceled"):
            kind = GatewayEventKind.REFUND_FAILED
            reason = refund.get("failure_reason") or status
            failure = Failure(code="refund_failed", message=f"Stripe refund {status}: {reason}")
        else:  # pending, requires_action: nothing decided yet
            kind = GatewayEventKind.UNKNOWN
        return GatewayEvent(
            kind=kind,
            payment_id=metadata.get(METADATA_PAYMENT_ID),
            provider_payment_id=_id_of(refund.get("payment_intent")),
            amount=_amount(refund.get("amount"), refund.get("currency")),
            refund_id=metadata.get(METADATA_REFUND_ID),
            provider_refund_id=refund.get("id"),
            failure=failure,
            **common,
        )

    def _charge_refunded_events(
        self, charge: Mapping[str, Any], common: dict[str, Any]
    ) -> list[GatewayEvent]:
        """`charge.refunded` names the refunds only on API versions before 2022-11-15 (which
        embedded `charge.refunds`); newer ones say just how much was refunded, so the event is
        recorded and `refund.updated` / `refund.failed` carry the news per refund."""
        refunds = (charge.get("refunds") or {}).get("data") or []
        if not refunds:
            return [
                GatewayEvent(
                    kind=GatewayEventKind.UNKNOWN,
                    payment_id=(charge.get("metadata") or {}).get(METADATA_PAYMENT_ID),
                    provider_payment_id=_id_of(charge.get("payment_intent")),
                    amount=_amount(charge.get("amount_refunded"), charge.get("currency")),
                    **common,
                )
            ]
        events = []
        for refund in refunds:
            one = self._refund_event(refund, common)
            # One notification, several refunds: each gets its own id for the workflow's de-duplication.
            events.append(one.model_copy(update={"event_id": f"{common['event_id']}:{refund.get('id')}"}))
        return events

    def _dispute_event(
        self, event_type: str, dispute: Mapping[str, Any], common: dict[str, Any]
    ) -> GatewayEvent:
        return GatewayEvent(
            kind=GatewayEventKind.DISPUTE_OPENED
            if event_type == "charge.dispute.created"
            else GatewayEventKind.DISPUTE_CLOSED,
            provider_payment_id=_id_of(dispute.get("payment_intent")),
            amount=_amount(dispute.get("amount"), dispute.get("currency")),
            dispute_id=dispute.get("id"),
            dispute_status=dispute.get("status"),
            dispute_reason=dispute.get("reason"),
            **common,
        )

    async def aclose(self) -> None:
        await self._http.close_async()


def _signature_timestamp(header: str) -> int:
    for item in header.split(","):
        key, _, value = item.partition("=")
        if key.strip() == "t":
            return int(value)
    raise WebhookVerificationError("Stripe-Signature has no timestamp")


def _id_of(value: Any) -> str | None:
    """An expandable field: an id, or the expanded object."""
    if isinstance(value, Mapping):
        return value.get("id")
    return value if isinstance(value, str) else None


def _amount(value: Any, currency: Any) -> Amount | None:
    if not isinstance(value, int) or not isinstance(currency, str) or not is_known_currency(currency):
        return None
    try:
        return from_stripe_amount(value, currency)
    except MoneyError:
        return None


def _saved_method(method: Mapping[str, Any]) -> SavedPaymentMethod:
    card = method.get("card") or {}
    return SavedPaymentMethod(
        id=method["id"],
        type=method.get("type", "card"),
        brand=card.get("brand"),
        last4=card.get("last4"),
        exp_month=card.get("exp_month"),
        exp_year=card.get("exp_year"),
        metadata=dict(method.get("metadata") or {}),
    )


def build(settings: StripeSettings) -> StripeGateway:
    """The registry's factory."""
    return StripeGateway(settings)
