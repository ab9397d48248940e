"""Pure Signifyd transformers: our calls to v3 event bodies, its decisions to verdicts.

Amounts are decimal major units plus an ISO currency. `score` runs 0-1000 and higher means *lower*
risk, so our 0-100 risk score is (1000 - score) / 10. `checkpointAction` decides: ACCEPT / REJECT /
HOLD (and PENDING, which Signifyd's own plugins treat like HOLD).
"""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from workflows.domain import FraudDecision
from workflows.fraud_io import FeedbackCall, ScreeningCall, ScreeningVerdict

CHECKOUTS = "/v3/orders/events/checkouts"
TRANSACTIONS = "/v3/orders/events/transactions"
CHARGEBACKS = "/v3/orders/events/chargebacks"

_ACTIONS = {
    "ACCEPT": FraudDecision.ALLOW,
    "REJECT": FraudDecision.BLOCK,
    "HOLD": FraudDecision.REVIEW,
    "PENDING": FraudDecision.REVIEW,
}


def _payment_method(method_type: str) -> str:
    return "CREDIT_CARD" if method_type == "card" else "THIRD_PARTY"


def checkout(call: ScreeningCall, now: datetime) -> dict[str, Any]:
    body: dict[str, Any] = {
        "orderId": call.order_id,
        "checkoutId": call.payment_id,
        "purchase": {
            "createdAt": now.isoformat(),
            "orderChannel": "WEB",
            "totalPrice": call.amount.to_decimal(),
            "currency": call.amount.currency,
        },
        "coverageRequests": ["FRAUD"],
    }
    if call.customer_email:
        body["purchase"]["confirmationEmail"] = call.customer_email
        body["userAccount"] = {"email": call.customer_email}
    if call.customer_ip:
        body["device"] = {"clientIpAddress": call.customer_ip, "sessionId": call.payment_id}
    return body


def sale(call: FeedbackCall) -> dict[str, Any]:
    """The gateway's answer for a pre-auth checkout: the sale went through."""
    return {
        "orderId": call.order_id,
        "checkoutId": call.payment_id,
        "transactions": [
            {
                "transactionId": call.provider_payment_id or call.payment_id,
                "gateway": call.gateway,
                "paymentMethod": "CREDIT_CARD",
                "amount": call.amount.to_decimal(),
                "currency": call.amount.currency,
                "gatewayStatusCode": "SUCCESS",
            }
        ],
    }


def chargeback(call: FeedbackCall) -> dict[str, Any]:
    return {
        "orderId": call.order_id,
        "chargebackId": call.dispute_id or call.payment_id,
        "chargeback": {
            "amount": {"amount": call.amount.to_decimal(), "currencyCode": call.amount.currency},
            "reason": {"processorReasonDescription": call.dispute_reason or "unknown"},
            "chargebackStage": "CHARGEBACK",
        },
    }


def verdict(body: Any) -> ScreeningVerdict | None:
    """The verdict in a checkout answer, or None when it holds no usable decision."""
    if not isinstance(body, dict):
        return None
    decision = body.get("decision") or {}
    action = _ACTIONS.get(str(decision.get("checkpointAction", "")).upper())
    if action is None:
        return None
    raw = decision.get("score")
    if raw is None:
        score = 0
    else:
        safety = min(Decimal(1000), max(Decimal(0), Decimal(str(raw))))
        score = int(((Decimal(1000) - safety) / 10).to_integral_value(ROUND_HALF_UP))
    reasons = [str(decision["checkpointActionReason"])] if decision.get("checkpointActionReason") else []
    reference = body.get("signifydId")
    return ScreeningVerdict(
        decision=action, score=score, reference=str(reference) if reference else None, reasons=reasons
    )
