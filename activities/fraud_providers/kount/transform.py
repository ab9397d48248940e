"""Pure Kount 360 transformers: our calls to Orders API bodies, its risk inquiry to verdicts.

`riskInquiry.decision` is APPROVE / REVIEW / DECLINE (Kount's ESCALATE counts as review). The
Omniscore runs 0-100 and a *lower* score means more risk, so our risk score is 100 - omniscore.
Amounts go in minor units, as RIS `TOTL` did.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from workflows.domain import FraudDecision
from workflows.fraud_io import FeedbackCall, ScreeningCall, ScreeningVerdict

ORDERS = "/commerce/v2/orders"
TOKEN_FORM = {"grant_type": "client_credentials", "scope": "k1_integration_api"}

_DECISIONS = {
    "APPROVE": FraudDecision.ALLOW,
    "REVIEW": FraudDecision.REVIEW,
    "ESCALATE": FraudDecision.REVIEW,
    "DECLINE": FraudDecision.BLOCK,
}


def order(call: ScreeningCall, channel: str, now: datetime) -> dict[str, Any]:
    payment: dict[str, Any] = {"type": "CARD" if call.method_type == "card" else "NONE"}
    if call.card_fingerprint:
        payment["paymentToken"] = call.card_fingerprint  # the gateway's fingerprint, never a PAN
    if call.card_last4:
        payment["last4"] = call.card_last4
    body: dict[str, Any] = {
        "merchantOrderId": call.order_id,
        "channel": channel,
        "deviceSessionId": call.payment_id,
        "creationDateTime": now.isoformat(),
        "transactions": [
            {
                "merchantTransactionId": call.payment_id,
                "processor": call.gateway,
                "payment": payment,
                "subtotal": call.amount.minor,
                "orderTotal": call.amount.minor,
                "currency": call.amount.currency,
            }
        ],
    }
    if call.customer_ip:
        body["userIp"] = call.customer_ip
    if call.customer_id or call.customer_email:
        account: dict[str, Any] = {}
        if call.customer_id:
            account["id"] = call.customer_id
        if call.customer_email:
            account["email"] = call.customer_email
        body["account"] = account
    return body


def captured(call: FeedbackCall) -> dict[str, Any]:
    """What the gateway said, for `PATCH /commerce/v2/orders/{orderId}` (no new evaluation)."""
    return {
        "transactions": [
            {
                "merchantTransactionId": call.payment_id,
                "processor": call.gateway,
                "authorizationStatus": {
                    "authResult": "APPROVED",
                    "gatewayTransactionId": call.provider_payment_id or call.payment_id,
                },
            }
        ]
    }


def verdict(body: Any) -> ScreeningVerdict | None:
    order_part = body.get("order") if isinstance(body, dict) else None
    if not isinstance(order_part, dict):
        return None
    inquiry = order_part.get("riskInquiry") or {}
    decision = _DECISIONS.get(str(inquiry.get("decision", "")).upper())
    if decision is None:
        return None
    omniscore = inquiry.get("omniscore")
    score = 0 if omniscore is None else 100 - min(100, max(0, round(Decimal(str(omniscore)))))
    segment = ((inquiry.get("segmentExecuted") or {}).get("segment") or {}).get("name")
    return ScreeningVerdict(
        decision=decision,
        score=score,
        reference=str(order_part["orderId"]) if order_part.get("orderId") else None,
        reasons=[f"kount_segment:{segment}"] if segment else [],
    )
