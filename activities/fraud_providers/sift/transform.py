"""Pure Sift transformers: our calls to Events API bodies, Sift's answers to verdicts.

Sift amounts are integer micros of the currency's base unit (USD 1.23 -> 1230000), for every
currency. The verdict comes from the payment-abuse workflow when one ran: a `decision` step's
decision id, mapped to its category (accept / watch / block) through the account's decision list; a
review queue step without a decision means an analyst will decide. Without a workflow, the score
(0-1, shown x100 in the console) decides on our thresholds.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from activities.fraud_providers.base import verdict_for_score
from workflows.domain import FraudDecision
from workflows.fraud_io import FeedbackCall, FeedbackKind, ScreeningCall, ScreeningVerdict, strictest
from workflows.money import Amount, exponent

ABUSE_TYPE = "payment_abuse"
# Characters Sift allows in a `$user_id`; other ids are sent as the session instead.
_USER_ID = re.compile(r"^[a-zA-Z0-9=.\-_+@:&^%!$]+$")
# Body `status` codes after which the same event may be accepted later.
RETRYABLE_STATUS = frozenset({-4, -3, -2, -1, 60})
_CATEGORY_DECISION = {
    "accept": FraudDecision.ALLOW,
    "watch": FraudDecision.REVIEW,
    "block": FraudDecision.BLOCK,
}
# Our gateway ids Sift has a `$payment_gateway` value for; others are left out.
_SIFT_GATEWAYS = {"stripe": "$stripe", "alipay": "$alipay", "paypal": "$paypal"}
# Our dispute reasons (the gateways' words) onto Sift's `$chargeback_reason`.
_CHARGEBACK_REASONS = {
    "fraudulent": "$fraud",
    "fraud": "$fraud",
    "duplicate": "$duplicate",
    "product_not_received": "$product_not_received",
    "product_unacceptable": "$product_unacceptable",
    "subscription_canceled": "$cancel_subscription",
}


def micros(amount: Amount) -> int:
    return amount.minor * 10 ** (6 - exponent(amount.currency))


def _who(customer_id: str | None, payment_id: str) -> dict[str, str]:
    if customer_id and _USER_ID.match(customer_id):
        return {"$user_id": customer_id}
    return {"$session_id": payment_id}


def create_order(call: ScreeningCall, api_key: str) -> dict[str, Any]:
    method: dict[str, Any] = {
        "$payment_type": "$credit_card" if call.method_type == "card" else "$third_party_processor"
    }
    if call.gateway in _SIFT_GATEWAYS:
        method["$payment_gateway"] = _SIFT_GATEWAYS[call.gateway]
    if call.card_last4:
        method["$card_last4"] = call.card_last4
    event: dict[str, Any] = {
        "$type": "$create_order",
        "$api_key": api_key,
        **_who(call.customer_id, call.payment_id),
        "$order_id": call.order_id,
        "$amount": micros(call.amount),
        "$currency_code": call.amount.currency,
        "$payment_methods": [method],
    }
    if call.customer_email:
        event["$user_email"] = call.customer_email
    if call.customer_ip:
        event["$ip"] = call.customer_ip
    return event


def feedback_event(call: FeedbackCall, api_key: str) -> dict[str, Any]:
    """After capture a successful `$transaction` (`$sale`); after a dispute a `$chargeback`."""
    common: dict[str, Any] = {
        "$api_key": api_key,
        **_who(call.customer_id, call.payment_id),
        "$order_id": call.order_id,
    }
    if call.provider_payment_id:
        common["$transaction_id"] = call.provider_payment_id
    if call.kind is FeedbackKind.CAPTURED:
        return {
            "$type": "$transaction",
            **common,
            "$transaction_type": "$sale",
            "$transaction_status": "$success",
            "$amount": micros(call.amount),
            "$currency_code": call.amount.currency,
        }
    return {
        "$type": "$chargeback",
        **common,
        "$chargeback_state": "$received",
        "$chargeback_reason": _CHARGEBACK_REASONS.get((call.dispute_reason or "").lower(), "$other"),
    }


def body_status(body: Any) -> tuple[int, str]:
    """Sift's own status and message: HTTP 200 alone does not mean accepted."""
    if not isinstance(body, dict) or not isinstance(body.get("status"), int):
        return -1, "answer without a status"
    return body["status"], str(body.get("error_message", ""))


def decision_ids(body: dict[str, Any]) -> list[str]:
    """The decision ids the synchronous workflow runs reached, in order."""
    score_response = body.get("score_response") or {}
    found = []
    for run in score_response.get("workflow_statuses") or []:
        for step in run.get("history") or []:
            if step.get("app") == "decision":
                decision_id = (step.get("config") or {}).get("decision_id")
                if decision_id:
                    found.append(str(decision_id))
    return found


def in_review_queue(body: dict[str, Any]) -> bool:
    score_response = body.get("score_response") or {}
    return any(
        step.get("app") == "review_queue"
        for run in score_response.get("workflow_statuses") or []
        for step in run.get("history") or []
    )


def run_id(body: dict[str, Any]) -> str | None:
    runs = (body.get("score_response") or {}).get("workflow_statuses") or []
    return str(runs[0]["id"]) if runs and runs[0].get("id") else None


def categories(decision_list: Any) -> dict[str, str]:
    """Decision id -> lower-case category, from `GET /v3/accounts/{id}/decisions` (the docs show
    both cases of the category)."""
    items = decision_list.get("data") if isinstance(decision_list, dict) else None
    return {
        str(item["id"]): str(item.get("category", "")).lower()
        for item in items or []
        if isinstance(item, dict) and "id" in item
    }


def verdict(
    body: dict[str, Any],
    category_of: dict[str, str],
    review_threshold: int,
    block_threshold: int,
) -> ScreeningVerdict:
    score_response = body.get("score_response") or {}
    raw = ((score_response.get("scores") or {}).get(ABUSE_TYPE) or {}).get("score")
    score = min(100, max(0, round(Decimal(str(raw)) * 100))) if raw is not None else 0
    reasons = [
        str(r.get("name"))
        for r in ((score_response.get("scores") or {}).get(ABUSE_TYPE) or {}).get("reasons") or []
        if isinstance(r, dict) and r.get("name")
    ]
    decided = [_CATEGORY_DECISION.get(category_of.get(d, "")) for d in decision_ids(body)]
    known = [d for d in decided if d is not None]
    if known:
        decision = strictest(*known)  # several workflows may run: the strictest decision holds
        reasons.append("sift_decision")
    elif in_review_queue(body):
        decision = FraudDecision.REVIEW
        reasons.append("sift_review_queue")
    else:
        decision = verdict_for_score(score, review_threshold, block_threshold)
    return ScreeningVerdict(decision=decision, score=score, reference=run_id(body), reasons=reasons)
