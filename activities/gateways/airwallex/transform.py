"""Airwallex requests and answers as plain data: Payment Intent, confirm, capture, cancel and refund
bodies from our contracts, decimal amounts on the wire, and Payment Intents and Refunds mapped to
our results. No HTTP: the adapter (adapter.py) sends, authenticates and sequences the calls.

Amounts are JSON numbers in major units (`49.99`), with no more decimals than the currency's ISO 4217
minor unit. They are written from our integer minor units through the money module and read back as
`Decimal` (the answers are parsed with `parse_float=Decimal`): never through a float.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from activities.gateways.airwallex.settings import AirwallexSettings
from activities.gateways.base import GatewayInvalidRequest, GatewayOutcomeUnknown
from workflows.domain import CardMethod, Failure, NextAction, NextActionType, RefundStatus
from workflows.gateway_io import (
    AuthorizeCall,
    GatewayPaymentStatus,
    GatewayResult,
    RefundCall,
    RefundResult,
)
from workflows.money import Amount, MoneyError, is_known_currency

METADATA_ORDER_ID = "durapay_order_id"
METADATA_PAYMENT_ID = "durapay_payment_id"
METADATA_REFUND_ID = "durapay_refund_id"

# Airwallex takes request ids of at most 64 characters.
REQUEST_ID_MAX = 64

_CANCELLATION_REASONS = {
    "duplicate": "Duplicate order",
    "fraudulent": "Suspected fraud",
    "requested_by_customer": "Requested by customer",
    "abandoned": "Abandoned by customer",
}


# --- the wire ------------------------------------------------------------------------------------


def request_id(idempotency_key: str, step: str) -> str:
    """The `request_id` of one mutating call: derived from the workflow's idempotency key, so a
    retried activity repeats the very request; `step` tells apart the calls one activity makes
    (create, then confirm). A key too long for Airwallex is replaced by its digest, which is as
    stable."""
    if not idempotency_key:
        raise GatewayInvalidRequest("an Airwallex call needs an idempotency key")
    value = f"{idempotency_key}:{step}"
    if len(value) > REQUEST_ID_MAX:
        value = hashlib.sha256(value.encode()).hexdigest()[:REQUEST_ID_MAX]
    return value


def encode(body: Mapping[str, Any]) -> bytes:
    """JSON with `Decimal` amounts written as plain numbers (`json` would need a float for that)."""
    return _encode(body).encode()


def _encode(value: Any) -> str:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{json.dumps(str(k))}:{_encode(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_encode(v) for v in value) + "]"
    return json.dumps(value)


def decode(raw: bytes) -> Any:
    """An answer's JSON, numbers with a fraction as `Decimal`."""
    return json.loads(raw, parse_float=Decimal)


def wire_amount(amount: Amount, settings: AirwallexSettings) -> Decimal:
    """`amount` as Airwallex's decimal, in a currency this account is configured for."""
    if amount.currency not in settings.currencies:
        raise GatewayInvalidRequest(
            f"Airwallex is not configured for {amount.currency}", code="currency_not_supported"
        )
    return amount.to_decimal()


def amount_of(value: Any, currency: Any) -> Amount | None:
    """An amount from an answer or event; None when it is not one we can read exactly."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal) or not isinstance(currency, str):
        return None
    if not is_known_currency(currency):
        return None
    try:
        return Amount.of(Decimal(value), currency)
    except MoneyError:
        return None


def _minor(value: Any, currency: Any) -> int:
    amount = amount_of(value, currency)
    if amount is None:
        raise GatewayOutcomeUnknown(f"Airwallex answered an amount we cannot read ({value!r} {currency!r})")
    return amount.minor


# --- requests ------------------------------------------------------------------------------------


def create_body(call: AuthorizeCall, settings: AirwallexSettings) -> dict[str, Any]:
    """The Payment Intent that is this payment; our payment id is its `merchant_order_id`."""
    body: dict[str, Any] = {
        "request_id": request_id(call.idempotency_key, "create"),
        "amount": wire_amount(call.amount, settings),
        "currency": call.amount.currency,
        "merchant_order_id": call.payment_id,
        "metadata": {**call.metadata, METADATA_ORDER_ID: call.order_id, METADATA_PAYMENT_ID: call.payment_id},
    }
    if call.description:
        body["descriptor"] = call.description[:32]
    if call.return_url:
        body["return_url"] = call.return_url
    if call.customer_email:
        body["customer"] = {"email": call.customer_email}
    return body


def confirm_body(call: AuthorizeCall) -> dict[str, Any]:
    """Confirm with the card the customer's browser tokenized at Airwallex (a payment method id).
    `auto_capture: false` leaves an authorization to capture later."""
    method = call.method
    if not isinstance(method, CardMethod):
        raise GatewayInvalidRequest(
            f"Airwallex here takes cards only, not {method.type}", code="method_not_supported"
        )
    card_options: dict[str, Any] = {"auto_capture": call.capture}
    if call.request_three_ds:
        card_options["three_ds_action"] = "FORCE_3DS"
    body: dict[str, Any] = {
        "request_id": request_id(call.idempotency_key, "confirm"),
        "payment_method": {"type": "card", "id": method.token},
        "payment_method_options": {"card": card_options},
    }
    if call.return_url:
        body["return_url"] = call.return_url
    if call.customer_ip:
        body["device_data"] = {"ip_address": call.customer_ip}
    return body


def capture_body(idempotency_key: str, amount: Amount, settings: AirwallexSettings) -> dict[str, Any]:
    return {"request_id": request_id(idempotency_key, "capture"), "amount": wire_amount(amount, settings)}


def cancel_body(idempotency_key: str, reason: str) -> dict[str, Any]:
    body: dict[str, Any] = {"request_id": request_id(idempotency_key, "cancel")}
    if reason in _CANCELLATION_REASONS:
        body["cancellation_reason"] = _CANCELLATION_REASONS[reason]
    return body


def refund_body(call: RefundCall, intent_id: str, settings: AirwallexSettings) -> dict[str, Any]:
    body: dict[str, Any] = {
        "request_id": request_id(call.idempotency_key, "refund"),
        "payment_intent_id": intent_id,
        "amount": wire_amount(call.amount, settings),
        "metadata": {METADATA_REFUND_ID: call.refund_id, METADATA_PAYMENT_ID: call.payment_id},
    }
    if call.reason:
        body["reason"] = call.reason[:128]
    return body


# --- answers -------------------------------------------------------------------------------------


def failure_of(attempt: Mapping[str, Any] | None) -> Failure:
    attempt = attempt or {}
    code = attempt.get("failure_code")
    return Failure(
        code="card_declined",
        message=str(attempt.get("failure_message") or "The card was declined."),
        decline_code=str(code) if code else None,
    )


def _failed(attempt: Any) -> bool:
    return isinstance(attempt, Mapping) and attempt.get("status") in ("FAILED", "EXPIRED")


def confirmed_before(intent: Mapping[str, Any]) -> bool:
    """The intent already had a payment attempt (a retried authorize): confirming again would try
    the card a second time."""
    return intent.get("status") != "REQUIRES_PAYMENT_METHOD" or bool(intent.get("latest_payment_attempt"))


def intent_result(intent: Mapping[str, Any]) -> GatewayResult:
    """A Payment Intent -> the workflow's view of it."""
    status = intent.get("status")
    currency = intent.get("currency")
    attempt = intent.get("latest_payment_attempt")
    summary = {"status": str(status), "payment_intent": str(intent.get("id"))}
    if isinstance(attempt, Mapping):
        summary["attempt_status"] = str(attempt.get("status"))
        if attempt.get("failure_code"):
            summary["failure_code"] = str(attempt["failure_code"])
    base: dict[str, Any] = {"provider_payment_id": intent.get("id"), "provider_response": summary}
    if status == "SUCCEEDED":
        return GatewayResult(
            status=GatewayPaymentStatus.SUCCEEDED,
            authorized_minor=_minor(intent.get("amount"), currency),
            captured_minor=_minor(intent.get("captured_amount"), currency),
            **base,
        )
    if status == "REQUIRES_CAPTURE":
        return GatewayResult(
            status=GatewayPaymentStatus.AUTHORIZED,
            authorized_minor=_minor(intent.get("amount"), currency),
            **base,
        )
    if status == "REQUIRES_CUSTOMER_ACTION":
        return GatewayResult(
            status=GatewayPaymentStatus.REQUIRES_ACTION, next_action=next_action(intent), **base
        )
    if status == "PENDING":
        return GatewayResult(status=GatewayPaymentStatus.PROCESSING, **base)
    if status == "CANCELLED":
        return GatewayResult(status=GatewayPaymentStatus.CANCELLED, **base)
    if status == "REQUIRES_PAYMENT_METHOD" and _failed(attempt):
        return GatewayResult(status=GatewayPaymentStatus.DECLINED, failure=failure_of(attempt), **base)
    if status == "REQUIRES_PAYMENT_METHOD":
        # Created, never confirmed: no card was tried and no money can move until one is.
        return GatewayResult(
            status=GatewayPaymentStatus.DECLINED,
            failure=Failure(code="payment_not_confirmed", message="Airwallex never received the card"),
            **base,
        )
    raise GatewayOutcomeUnknown(f"Airwallex answered an intent in an unknown status {status!r}")


def next_action(intent: Mapping[str, Any]) -> NextAction:
    """Airwallex's `next_action` (3-D Secure, redirect methods) -> ours. A POST form (a 3DS method
    or challenge form) keeps its method and fields in `data` for the page that submits it."""
    action = intent.get("next_action") or {}
    if not isinstance(action, Mapping) or not action.get("url"):
        raise GatewayOutcomeUnknown("Airwallex asked for a customer action without saying which")
    data = {"method": str(action.get("method") or "GET")}
    form = action.get("data")
    if isinstance(form, Mapping):
        data.update({str(k): str(v) for k, v in form.items()})
    return NextAction(type=NextActionType.REDIRECT_TO_URL, url=str(action["url"]), data=data)


def refund_status(refund: Mapping[str, Any]) -> RefundStatus:
    """RECEIVED: Airwallex has the request; ACCEPTED: sent on to the card network, which does not
    refuse a refund of a settled payment; SETTLED: the money is back; FAILED."""
    status = refund.get("status")
    if status in ("ACCEPTED", "SETTLED", "SUCCEEDED"):
        return RefundStatus.SUCCEEDED
    if status == "FAILED":
        return RefundStatus.FAILED
    return RefundStatus.PENDING


def refund_result(refund_id: str, refund: Mapping[str, Any]) -> RefundResult:
    status = refund_status(refund)
    failure = None
    if status is RefundStatus.FAILED:
        reason = refund.get("failure_reason") or refund.get("failure_code") or "failed"
        failure = Failure(code="refund_failed", message=f"Airwallex refund failed: {reason}")
    return RefundResult(
        refund_id=refund_id, status=status, provider_refund_id=refund.get("id"), failure=failure
    )
