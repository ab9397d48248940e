"""What the workflow sends to a fraud screening service (Sift, Signifyd, Kount) and what comes back.

The rules (`ledger_io.FraudCheckRequest`) run first as a local step; when they leave the payment to a
screening service the workflow calls it with a `ScreeningCall`, and tells it afterwards what became of
the payment (`FeedbackCall`: captured, disputed) so that its model learns. Only non-sensitive card
data travels: last 4, brand, country, and the gateway's token / fingerprint, never a card number.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from workflows.domain import Contract, FraudDecision
from workflows.money import Amount


class ScreeningCall(Contract):
    provider: str  # sift | signifyd | kount
    payment_id: str
    order_id: str
    amount: Amount
    method_type: str  # card, wallet, bank_transfer, bnpl
    gateway: str
    card_last4: str | None = None
    card_brand: str | None = None
    card_country: str | None = None
    card_fingerprint: str | None = None
    customer_id: str | None = None
    customer_email: str | None = None
    customer_ip: str | None = None


class ScreeningVerdict(Contract):
    """A screening service's answer, mapped onto our scale: `score` 0-100, higher is riskier."""

    decision: FraudDecision
    score: int = Field(ge=0, le=100)
    reference: str | None = None  # the service's id for this screening
    reasons: list[str] = Field(default_factory=list)


class FeedbackKind(StrEnum):
    CAPTURED = "captured"  # the money moved
    DISPUTED = "disputed"  # a chargeback was opened


class FeedbackCall(Contract):
    provider: str
    kind: FeedbackKind
    payment_id: str
    order_id: str
    amount: Amount
    gateway: str
    customer_id: str | None = None
    provider_payment_id: str | None = None  # the gateway's id of the payment
    reference: str | None = None  # the screening service's id, from the verdict
    dispute_id: str | None = None
    dispute_reason: str | None = None


_SEVERITY = (FraudDecision.ALLOW, FraudDecision.REVIEW, FraudDecision.BLOCK)


def strictest(*decisions: FraudDecision) -> FraudDecision:
    """Block over review over allow: when the rules and a service disagree, the stricter holds."""
    return max(decisions, key=_SEVERITY.index)
