"""Pure mapping between durapay's gateway calls and PayPal's REST v2 Orders / Payments JSON: request
bodies, PayPal's money objects, and order / capture / refund answers mapped onto our results. No
HTTP here (adapter.py sends), so every rule is tested without a server.

PayPal's money is `{"currency_code": "USD", "value": "10.00"}`: a decimal string in major units
with the currency's places, except HUF, JPY and TWD, which PayPal takes without decimals (HUF and
TWD have two in ISO 4217: an amount with cents cannot be sent there).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from activities.gateways.base import GatewayInvalidRequest, GatewayOutcomeUnknown
from workflows.domain import CaptureMethod, Failure, NextAction, NextActionType, RefundStatus
from workflows.gateway_io import AuthorizeCall, GatewayPaymentStatus, GatewayResult, RefundCall, RefundResult
from workflows.money import Amount, MoneyError, exponent

PROVIDER = "PayPal"

# Currencies PayPal takes in whole units only (its currency-code list).
NO_DECIMALS = frozenset({"HUF", "JPY", "TWD"})

# The order waits for the payer (approval page) or for us (APPROVED: capture or authorize it).
_WAITING = frozenset({"CREATED", "SAVED", "PAYER_ACTION_REQUIRED", "APPROVED"})
# Capture statuses under which the money was taken (a refund later does not undo the capture).
_CAPTURED = frozenset({"COMPLETED", "PARTIALLY_REFUNDED", "REFUNDED"})
_CAPTURE_FAILED = frozenset({"DECLINED", "FAILED"})
# The link PayPal gives the payer: `payer-action` when the order names `payment_source.paypal`,
# `approve` for the older flow.
_APPROVAL_RELS = ("payer-action", "approve")
# 422 issues that mean the payer's funding was refused: a decline, not a bad request.
DECLINE_ISSUES = frozenset({"INSTRUMENT_DECLINED", "TRANSACTION_REFUSED", "PAYER_CANNOT_PAY"})


def places(currency: str) -> int:
    """How many decimals PayPal takes in `currency`."""
    return 0 if currency.upper() in NO_DECIMALS else exponent(currency)


def money(amount: Amount) -> dict[str, str]:
    """Our Amount as PayPal's money object."""
    digits = places(amount.currency)
    value = amount.to_decimal()
    if value != value.quantize(Decimal(1).scaleb(-digits)):
        raise GatewayInvalidRequest(f"PayPal takes {amount.currency} in whole units only, not {value}")
    return {"currency_code": amount.currency, "value": str(value.quantize(Decimal(1).scaleb(-digits)))}


def amount_of(value: Mapping[str, Any] | None) -> Amount:
    """PayPal's money object as our Amount (its own places for the currency)."""
    if not value:
        raise GatewayOutcomeUnknown("PayPal answered without an amount")
    try:
        return Amount.of(Decimal(str(value["value"])), str(value["currency_code"]))
    except (KeyError, InvalidOperation, MoneyError, ValueError) as exc:
        raise GatewayOutcomeUnknown(f"PayPal answered an unreadable amount: {exc}") from None


def order_body(call: AuthorizeCall, *, brand_name: str | None = None) -> dict[str, Any]:
    """`POST /v2/checkout/orders`: one purchase unit carrying our payment id (custom_id, echoed in
    every capture, authorization and webhook; invoice_id, which PayPal refuses to take twice)."""
    unit: dict[str, Any] = {
        "reference_id": "default",
        "custom_id": call.payment_id,
        "invoice_id": call.payment_id,
        "amount": money(call.amount),
    }
    if call.description:
        unit["description"] = call.description[:127]
    context: dict[str, Any] = {"user_action": "PAY_NOW", "shipping_preference": "NO_SHIPPING"}
    if call.return_url:
        # The payer comes back to the shop either way; the shop then reports it through
        # `/v1/payments/{id}/actions/complete`, and our lookup asks PayPal what happened.
        context["return_url"] = call.return_url
        context["cancel_url"] = call.return_url
    if brand_name:
        context["brand_name"] = brand_name
    return {
        "intent": "CAPTURE" if call.capture else "AUTHORIZE",
        "purchase_units": [unit],
        "payment_source": {"paypal": {"experience_context": context}},
    }


def intent_of(capture_method: CaptureMethod) -> str:
    return "AUTHORIZE" if capture_method is CaptureMethod.MANUAL else "CAPTURE"


def capture_body(amount: Amount, payment_id: str) -> dict[str, Any]:
    """`POST /v2/payments/authorizations/{id}/capture`: our one capture is the last, so PayPal
    releases what is left of the hold (`final_capture`)."""
    return {"amount": money(amount), "final_capture": True, "invoice_id": payment_id}


def refund_body(call: RefundCall) -> dict[str, Any]:
    """`POST /v2/payments/captures/{id}/refund`: custom_id carries our refund id (echoed in the
    refund and its webhook), invoice_id our payment id."""
    body: dict[str, Any] = {
        "amount": money(call.amount),
        "custom_id": call.refund_id,
        "invoice_id": call.payment_id,
    }
    if call.reason:
        body["note_to_payer"] = call.reason[:255]
    return body


def _unit(order: Mapping[str, Any]) -> Mapping[str, Any]:
    units = order.get("purchase_units") or [{}]
    return units[0]


def payments_of(order: Mapping[str, Any]) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    """(captures, authorizations) of the order's purchase unit."""
    payments = _unit(order).get("payments") or {}
    return list(payments.get("captures") or []), list(payments.get("authorizations") or [])


# Appended to the order's custom_id when we cancel an order PayPal still lets the payer approve
# (Orders have no cancel call): whoever looks the order up later (the workflow, reconciliation) must
# never capture it.
CANCELLED_MARK = ":cancelled"
CUSTOM_ID_PATH = "/purchase_units/@reference_id=='default'/custom_id"


def payment_id_of(order: Mapping[str, Any]) -> str | None:
    """Our payment id, as the order carries it."""
    custom_id = _unit(order).get("custom_id")
    return custom_id.removesuffix(CANCELLED_MARK) if isinstance(custom_id, str) else None


def cancelled_by_us(order: Mapping[str, Any]) -> bool:
    return str(_unit(order).get("custom_id") or "").endswith(CANCELLED_MARK)


def cancel_patch(payment_id: str) -> list[dict[str, Any]]:
    """`PATCH /v2/checkout/orders/{id}`: the mark that the order is cancelled on our side."""
    return [{"op": "replace", "path": CUSTOM_ID_PATH, "value": payment_id + CANCELLED_MARK}]


def refunds_of(order: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list((_unit(order).get("payments") or {}).get("refunds") or [])


def approval_link(order: Mapping[str, Any]) -> str | None:
    links = {link.get("rel"): link.get("href") for link in order.get("links") or []}
    return next((links[rel] for rel in _APPROVAL_RELS if links.get(rel)), None)


def completed_capture(order: Mapping[str, Any]) -> Mapping[str, Any] | None:
    captures, _ = payments_of(order)
    return next((c for c in captures if c.get("status") in _CAPTURED), None)


def open_authorization(order: Mapping[str, Any]) -> Mapping[str, Any] | None:
    _, authorizations = payments_of(order)
    return next((a for a in authorizations if a.get("status") in ("CREATED", "PENDING")), None)


def declined(message: str, issue: str | None = None) -> Failure:
    return Failure(code="payment_declined", message=message[:200], decline_code=issue)


def order_result(order: Mapping[str, Any]) -> GatewayResult:
    """The order as our result. An APPROVED order still waits for us: the adapter captures or
    authorizes it before it maps an answer (see `PayPalGateway._current`)."""
    order_id = str(order.get("id") or "")
    status = str(order.get("status") or "")
    summary = {"order_status": status}
    if status in _WAITING and cancelled_by_us(order):
        return GatewayResult(
            status=GatewayPaymentStatus.CANCELLED,
            provider_payment_id=order_id,
            provider_response={**summary, "cancelled_by_us": "true"},
        )
    if status in _WAITING:
        link = approval_link(order)
        action = NextAction(type=NextActionType.REDIRECT_TO_URL, url=link) if link else None
        return GatewayResult(
            status=GatewayPaymentStatus.REQUIRES_ACTION,
            provider_payment_id=order_id,
            next_action=action,
            provider_response=summary,
        )
    if status == "VOIDED":
        return GatewayResult(
            status=GatewayPaymentStatus.CANCELLED, provider_payment_id=order_id, provider_response=summary
        )
    if status != "COMPLETED":
        raise GatewayOutcomeUnknown(f"PayPal order in an unknown status {status!r}")
    captures, authorizations = payments_of(order)
    captured = [amount_of(c.get("amount")).minor for c in captures if c.get("status") in _CAPTURED]
    if captured:
        return GatewayResult(
            status=GatewayPaymentStatus.SUCCEEDED,
            provider_payment_id=order_id,
            captured_minor=sum(captured),
            provider_response={**summary, "capture_status": str(captures[-1].get("status"))},
        )
    if any(c.get("status") == "PENDING" for c in captures):
        return GatewayResult(
            status=GatewayPaymentStatus.PROCESSING,
            provider_payment_id=order_id,
            provider_response={**summary, "capture_status": "PENDING"},
        )
    if captures and all(c.get("status") in _CAPTURE_FAILED for c in captures):
        reason = (captures[-1].get("status_details") or {}).get("reason")
        return GatewayResult(
            status=GatewayPaymentStatus.DECLINED,
            provider_payment_id=order_id,
            failure=declined(f"PayPal declined the capture ({reason or captures[-1].get('status')})", reason),
            provider_response={**summary, "capture_status": str(captures[-1].get("status"))},
        )
    if authorizations:
        last = authorizations[-1]
        auth_status = str(last.get("status") or "")
        detail = {**summary, "authorization_status": auth_status}
        if auth_status in ("CREATED", "PENDING"):
            return GatewayResult(
                status=GatewayPaymentStatus.AUTHORIZED,
                provider_payment_id=order_id,
                authorized_minor=amount_of(last.get("amount")).minor,
                provider_response=detail,
            )
        if auth_status in ("VOIDED", "EXPIRED"):
            return GatewayResult(
                status=GatewayPaymentStatus.CANCELLED, provider_payment_id=order_id, provider_response=detail
            )
        if auth_status == "DENIED":
            return GatewayResult(
                status=GatewayPaymentStatus.DECLINED,
                provider_payment_id=order_id,
                failure=declined("PayPal denied the authorization"),
                provider_response=detail,
            )
    raise GatewayOutcomeUnknown(f"PayPal order {order_id} is completed without a capture or authorization")


def refund_result(refund: Mapping[str, Any], refund_id: str) -> RefundResult:
    status = str(refund.get("status") or "")
    provider_refund_id = str(refund.get("id") or "") or None
    if status == "COMPLETED":
        return RefundResult(
            refund_id=refund_id, status=RefundStatus.SUCCEEDED, provider_refund_id=provider_refund_id
        )
    if status == "PENDING":
        return RefundResult(
            refund_id=refund_id, status=RefundStatus.PENDING, provider_refund_id=provider_refund_id
        )
    if status in ("FAILED", "CANCELLED"):
        reason = (refund.get("status_details") or {}).get("reason") or status
        return RefundResult(
            refund_id=refund_id,
            status=RefundStatus.FAILED,
            provider_refund_id=provider_refund_id,
            failure=Failure(code="refund_failed", message=f"PayPal refund {status.lower()}: {reason}"),
        )
    raise GatewayOutcomeUnknown(f"PayPal refund in an unknown status {status!r}")


def error_of(body: Any) -> tuple[str | None, str | None, str | None]:
    """(name, first issue, message) of a PayPal error answer
    (`{"name", "message", "details": [{"issue", "description"}]}`)."""
    if not isinstance(body, Mapping):
        return None, None, None
    details = body.get("details") or [{}]
    first = details[0] if isinstance(details[0], Mapping) else {}
    message = first.get("description") or body.get("message")
    return body.get("name"), first.get("issue"), message
