"""Stripe requests and answers as plain data: PaymentIntent and Refund parameters from our contracts
and settings, Stripe's amount integers, and PaymentIntents, Refunds, card errors, events and saved
PaymentMethods mapped to our results (events: webhooks.py). No HTTP, no SDK client: the adapter (adapter.py) sends through
the SDK, verifies signatures and sequences the calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from activities.gateways.base import GatewayInvalidRequest, SavedPaymentMethod
from activities.gateways.stripe.settings import StripeSettings
from workflows.domain import CaptureMethod, CardMethod, Failure, NextAction, NextActionType, RefundStatus
from workflows.gateway_io import (
    RESERVED_METADATA_PREFIX,
    AuthorizeCall,
    GatewayPaymentStatus,
    GatewayResult,
    RefundCall,
    RefundResult,
)
from workflows.money import Amount, MoneyError, exponent

METADATA_PAYMENT_ID = "durapay_payment_id"
METADATA_ORDER_ID = "durapay_order_id"
METADATA_REFUND_ID = "durapay_refund_id"
METADATA_REFUND_REASON = "durapay_refund_reason"


# https://docs.stripe.com/metadata: Stripe answers 400 past these.
METADATA_MAX_KEYS = 50
METADATA_KEY_MAX_CHARS = 40
METADATA_VALUE_MAX_CHARS = 500


def _merchant_metadata(metadata: Mapping[str, str], *, room: int) -> dict[str, str]:
    """The merchant's metadata, refused before anything is sent if Stripe would refuse it beside
    our own `room`-leaving keys (the API keeps within these; other callers may not)."""
    if len(metadata) > room:
        raise GatewayInvalidRequest(
            f"Stripe metadata: at most {room} keys of the merchant's, not {len(metadata)}"
        )
    for key, value in metadata.items():
        if key.startswith(RESERVED_METADATA_PREFIX):
            raise GatewayInvalidRequest(f"Stripe metadata: {key!r} is one of durapay's own keys")
        if "[" in key or "]" in key:
            raise GatewayInvalidRequest("Stripe metadata keys cannot contain square brackets")
        if len(key) > METADATA_KEY_MAX_CHARS or len(value) > METADATA_VALUE_MAX_CHARS:
            raise GatewayInvalidRequest(
                f"Stripe metadata: keys of at most {METADATA_KEY_MAX_CHARS} characters, values of at most "
                f"{METADATA_VALUE_MAX_CHARS}"
            )
    return dict(metadata)


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


def stripe_amount(amount: Amount, settings: StripeSettings) -> int:
    """`amount` as Stripe's integer, in a currency this account is configured for."""
    if amount.currency not in settings.currencies:
        raise GatewayInvalidRequest(
            f"Stripe is not configured for {amount.currency}", code="currency_not_supported"
        )
    return to_stripe_amount(amount)


# --- requests ----------------------------------------------------------------------------------


def intent_params(call: AuthorizeCall, settings: StripeSettings) -> dict[str, Any]:
    """The parameters of the PaymentIntent that is this payment, created and confirmed in one call."""
    method = call.method
    if not isinstance(method, CardMethod):
        raise GatewayInvalidRequest(
            f"Stripe here takes cards only, not {method.type}", code="method_not_supported"
        )
    ours = {METADATA_PAYMENT_ID: call.payment_id, METADATA_ORDER_ID: call.order_id}
    metadata = {**_merchant_metadata(call.metadata, room=METADATA_MAX_KEYS - len(ours)), **ours}
    params: dict[str, Any] = {
        "amount": stripe_amount(call.amount, settings),
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
    if settings.statement_descriptor_suffix:
        # Card payments take only the dynamic suffix; the prefix is the account's descriptor.
        params["statement_descriptor_suffix"] = settings.statement_descriptor_suffix
    return params


def cancel_params(reason: str | None) -> dict[str, Any]:
    # Stripe knows four reasons; any other stays ours and the intent is cancelled without one.
    return {"cancellation_reason": reason} if reason in _CANCELLATION_REASONS else {}


def refund_params(call: RefundCall, intent_id: str, settings: StripeSettings) -> dict[str, Any]:
    """The parameters of the Refund of `call` on the PaymentIntent `intent_id`."""
    amount = stripe_amount(call.amount, settings)
    metadata = {METADATA_REFUND_ID: call.refund_id, METADATA_PAYMENT_ID: call.payment_id}
    params: dict[str, Any] = {"payment_intent": intent_id, "amount": amount, "metadata": metadata}
    if call.reason:
        if call.reason in _REFUND_REASONS:
            params["reason"] = call.reason
        else:
            # Free text has no place in Stripe's reason enum; keep it with the refund anyway.
            metadata[METADATA_REFUND_REASON] = call.reason[:500]
    return params


# --- answers -----------------------------------------------------------------------------------


def failure_from_error(error: Mapping[str, Any] | None) -> Failure:
    error = error or {}
    code = error.get("code")
    message = error.get("message") or "The payment was declined."
    if error.get("type") == "card_error":
        return Failure(code="card_declined", message=message, decline_code=error.get("decline_code") or code)
    if code == "payment_intent_authentication_failure":
        return Failure(code="authentication_failed", message=message)
    return Failure(code=code or "payment_failed", message=message, decline_code=error.get("decline_code"))


def intent_result(intent: Mapping[str, Any], publishable_key: str | None) -> GatewayResult:
    """A PaymentIntent -> the workflow's view of it; `publishable_key` goes to Stripe.js with a
    next action the customer's browser finishes."""
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
            status=GatewayPaymentStatus.REQUIRES_ACTION,
            next_action=next_action(intent, publishable_key),
            **base,
        )
    if status == "processing":
        return GatewayResult(status=GatewayPaymentStatus.PROCESSING, **base)
    if status == "canceled":
        if intent.get("cancellation_reason"):
            summary["cancellation_reason"] = str(intent["cancellation_reason"])
        return GatewayResult(status=GatewayPaymentStatus.CANCELLED, **base)
    # requires_payment_method (a failed attempt) or requires_confirmation: we always confirm on
    # create, so either way no money moved and none will without a new attempt.
    return GatewayResult(status=GatewayPaymentStatus.DECLINED, failure=failure_from_error(error), **base)


def next_action(intent: Mapping[str, Any], publishable_key: str | None) -> NextAction:
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
    if publishable_key:
        data["publishable_key"] = publishable_key
    return NextAction(type=NextActionType.USE_SDK, data=data)


def declined_result(error: Mapping[str, Any], publishable_key: str | None) -> GatewayResult:
    """A card error (HTTP 402, its body's `error`): final, no money moved. Stripe attaches the
    failed intent."""
    intent = error.get("payment_intent")
    if isinstance(intent, Mapping) and intent.get("id"):
        result = intent_result(intent, publishable_key)
        if result.status is GatewayPaymentStatus.DECLINED:
            return result.model_copy(update={"failure": failure_from_error(error)})
    summary = {"status": "card_error", "code": str(error.get("code"))}
    if error.get("decline_code"):
        summary["decline_code"] = str(error["decline_code"])
    return GatewayResult(
        status=GatewayPaymentStatus.DECLINED,
        provider_payment_id=intent.get("id") if isinstance(intent, Mapping) else None,
        failure=failure_from_error({"type": "card_error", **error}),
        provider_response=summary,
    )


def refund_result(refund_id: str, refund: Mapping[str, Any]) -> RefundResult:
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
    return RefundResult(refund_id=refund_id, status=RefundStatus.PENDING, provider_refund_id=refund.get("id"))


def saved_method(method: Mapping[str, Any]) -> SavedPaymentMethod:
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
