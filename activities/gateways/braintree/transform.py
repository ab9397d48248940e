"""Braintree requests and answers as plain data: sale parameters from our contracts and settings,
Braintree's decimal amount strings, and transactions, refunds and vaulted cards mapped to our
results. No SDK client, no threads: the adapter (adapter.py) sends, sequences and maps errors.

Braintree objects are read by attribute (the SDK's `Transaction`, `CreditCard`, ...), so these
functions take anything with those attributes.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from activities.gateways.base import GatewayInvalidRequest, SavedPaymentMethod
from activities.gateways.braintree.settings import BraintreeSettings
from workflows.domain import CardMethod, Failure, RefundStatus
from workflows.gateway_io import AuthorizeCall, GatewayPaymentStatus, GatewayResult, RefundResult
from workflows.money import Amount, MoneyError, from_minor

# Vault tokens durapay creates carry this prefix; any other card token is a one-time nonce.
VAULT_TOKEN_PREFIX = "dpm_"

_CAPTURED = frozenset(
    {"submitted_for_settlement", "settling", "settled", "settlement_pending", "settlement_confirmed"}
)
_RELEASED = frozenset({"voided", "authorization_expired"})
_REFUSED = frozenset({"processor_declined", "gateway_rejected", "failed", "settlement_declined"})
# A sale that moved money outranks one that holds it, which outranks one that moved nothing.
_RANK = {**dict.fromkeys(_CAPTURED, 3), "authorized": 2, "authorizing": 1}
# Refunds that did not fail: they gave (or are giving) the money back.
REFUND_STANDING = _CAPTURED | {"authorized", "authorizing"}


# --- references ----------------------------------------------------------------------------------


def sale_order_id(payment_id: str) -> str:
    """The `order_id` of our payment's sale: Braintree has no idempotency key, so this is how a
    sale whose answer was lost is found again (transaction search)."""
    return payment_id


def refund_order_id(payment_id: str, refund_id: str) -> str:
    """The `order_id` of one of our refunds (refund ids are unique per payment only)."""
    return f"{payment_id}/refund/{refund_id}"


def is_vault_token(token: str) -> bool:
    return token.startswith(VAULT_TOKEN_PREFIX)


# --- amounts -------------------------------------------------------------------------------------


def braintree_amount(amount: Amount, settings: BraintreeSettings) -> Decimal:
    """`amount` as the decimal Braintree takes (major units, the currency's own decimals), in a
    currency this account is configured for."""
    if amount.currency not in settings.currencies:
        raise GatewayInvalidRequest(
            f"Braintree is not configured for {amount.currency}", code="currency_not_supported"
        )
    return from_minor(amount.minor, amount.currency)


def merchant_account(amount: Amount, settings: BraintreeSettings) -> dict[str, str]:
    account = settings.merchant_accounts.get(amount.currency)
    return {"merchant_account_id": account} if account else {}


def amount_of(value: Any, currency: Any) -> Amount | None:
    """A Braintree decimal amount as our Amount; None when it is not one."""
    if value is None or not isinstance(currency, str):
        return None
    try:
        return Amount.of(Decimal(str(value)), currency.upper())
    except (MoneyError, ValueError, ArithmeticError):
        return None


# --- requests ------------------------------------------------------------------------------------


def sale_params(call: AuthorizeCall, settings: BraintreeSettings) -> dict[str, Any]:
    """`transaction.sale` parameters of our payment: a sale submitted for settlement at once
    (`call.capture`) or an authorization."""
    method = call.method
    if not isinstance(method, CardMethod):
        raise GatewayInvalidRequest(
            f"Braintree here takes cards only, not {method.type}", code="method_not_supported"
        )
    params: dict[str, Any] = {
        "amount": braintree_amount(call.amount, settings),
        "order_id": sale_order_id(call.payment_id),
        **merchant_account(call.amount, settings),
        "options": {
            "submit_for_settlement": call.capture,
            # 3-D Secure runs in the customer's browser (Drop-in / Hosted Fields) before the nonce
            # reaches us; asking Braintree to require it turns a nonce without a successful
            # authentication into a gateway rejection, never a charge.
            "three_d_secure": {"required": call.request_three_ds},
        },
    }
    if is_vault_token(method.token):
        params["payment_method_token"] = method.token
    else:
        params["payment_method_nonce"] = method.token
    # Not sent: `call.description` (Braintree keeps free text only in custom fields, which the
    # merchant must first define in the Control Panel).
    return params


def refund_params(payment_id: str, refund_id: str, amount: Decimal) -> dict[str, Any]:
    return {"amount": amount, "order_id": refund_order_id(payment_id, refund_id)}


# --- answers -------------------------------------------------------------------------------------


def rank(transaction: Any) -> tuple[int, str]:
    """Order sales found under one order id: the one that moved money first, then the newest."""
    created = getattr(transaction, "created_at", None)
    return (_RANK.get(getattr(transaction, "status", ""), 0), created.isoformat() if created else "")


def failure_of(transaction: Any) -> Failure:
    status = getattr(transaction, "status", None)
    if status == "processor_declined":
        return Failure(
            code="card_declined",
            message=getattr(transaction, "processor_response_text", None) or "The card was declined.",
            decline_code=getattr(transaction, "processor_response_code", None),
        )
    if status == "gateway_rejected":
        reason = getattr(transaction, "gateway_rejection_reason", None) or "rejected"
        if reason == "three_d_secure":
            return Failure(
                code="authentication_failed",
                message="3-D Secure was required and the payment method did not pass it.",
                decline_code=reason,
            )
        return Failure(
            code="card_declined", message=f"Braintree rejected the payment ({reason}).", decline_code=reason
        )
    if status == "settlement_declined":
        return Failure(code="settlement_declined", message="The processor declined the settlement.")
    return Failure(code="payment_failed", message=f"The payment failed ({status}).")


def transaction_result(transaction: Any) -> GatewayResult:
    """A sale -> the workflow's view of it."""
    status = str(getattr(transaction, "status", ""))
    currency = str(getattr(transaction, "currency_iso_code", "") or "")
    amount = amount_of(getattr(transaction, "amount", None), currency)
    minor = amount.minor if amount else None
    summary = {"status": status, "transaction": str(getattr(transaction, "id", ""))}
    for field in ("processor_response_code", "gateway_rejection_reason"):
        if getattr(transaction, field, None):
            summary[field] = str(getattr(transaction, field))
    base: dict[str, Any] = {
        "provider_payment_id": getattr(transaction, "id", None),
        "provider_response": summary,
    }
    if status in _CAPTURED:
        return GatewayResult(
            status=GatewayPaymentStatus.SUCCEEDED, authorized_minor=minor, captured_minor=minor, **base
        )
    if status == "authorized":
        return GatewayResult(status=GatewayPaymentStatus.AUTHORIZED, authorized_minor=minor, **base)
    if status == "authorizing":
        return GatewayResult(status=GatewayPaymentStatus.PROCESSING, **base)
    if status in _RELEASED:
        return GatewayResult(status=GatewayPaymentStatus.CANCELLED, **base)
    return GatewayResult(status=GatewayPaymentStatus.DECLINED, failure=failure_of(transaction), **base)


def refund_result(refund_id: str, refund: Any) -> RefundResult:
    """A refund (a Braintree credit transaction) -> our refund's state. Braintree refunds settle
    like sales; one that was accepted gives the money back unless `refund_failed` says otherwise."""
    status = getattr(refund, "status", None)
    if status in REFUND_STANDING:
        return RefundResult(refund_id=refund_id, status=RefundStatus.SUCCEEDED, provider_refund_id=refund.id)
    return RefundResult(
        refund_id=refund_id,
        status=RefundStatus.FAILED,
        provider_refund_id=getattr(refund, "id", None),
        failure=Failure(code="refund_failed", message=f"Braintree refund {status}"),
    )


def saved_method(method: Any) -> SavedPaymentMethod:
    """A vaulted credit card."""
    month = getattr(method, "expiration_month", None)
    year = getattr(method, "expiration_year", None)
    return SavedPaymentMethod(
        id=method.token,
        type="card",
        brand=getattr(method, "card_type", None),
        last4=getattr(method, "last_4", None),
        exp_month=int(month) if month else None,
        exp_year=int(year) if year else None,
    )
