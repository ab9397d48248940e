"""Checks a payment request against what its gateway accepts. Pure: the API runs it before
starting anything (bad input changes nothing), the workflow runs it again as its first step."""

from __future__ import annotations

from workflows.domain import (
    CaptureMethod,
    Failure,
    GatewayProfile,
    PaymentMethod,
    WalletMethod,
)
from workflows.money import Amount


def method_key(method: PaymentMethod) -> str:
    """How a method is named in `GatewayProfile.methods`: its type, or `wallet:<name>`."""
    if isinstance(method, WalletMethod):
        return f"wallet:{method.wallet}"
    return method.type


def validate_payment(
    profile: GatewayProfile, amount: Amount, method: PaymentMethod, capture_method: CaptureMethod
) -> Failure | None:
    """The first reason `profile` refuses the payment, or None."""
    if amount.minor <= 0:
        return Failure(code="invalid_amount", message="amount must be greater than zero")
    if amount.currency not in profile.currencies:
        return Failure(
            code="currency_not_supported",
            message=f"{profile.name} does not accept {amount.currency}",
        )
    key = method_key(method)
    if key not in profile.methods and method.type not in profile.methods:
        return Failure(
            code="payment_method_not_supported",
            message=f"{profile.name} does not accept {key} payments",
        )
    if amount.minor < profile.min_minor:
        return Failure(
            code="amount_too_small",
            message=f"{profile.name} needs at least {amount.with_minor(profile.min_minor)}",
        )
    if amount.minor > profile.max_minor:
        return Failure(
            code="amount_too_large",
            message=f"{profile.name} accepts at most {amount.with_minor(profile.max_minor)}",
        )
    if capture_method is CaptureMethod.MANUAL and not profile.supports_manual_capture:
        return Failure(
            code="manual_capture_not_supported",
            message=f"{profile.name} captures on payment; manual capture is not available",
        )
    return None
