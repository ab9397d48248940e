"""A payment's fraud rules, apart from Temporal: when the fraud result blocks it, what the screening
service's verdict adds, when it is held for an operator and what the operator's decision does, and
the feedback the screening service gets.

`ReviewState` is mixed into `PaymentState` (workflows/payment_state.py), which owns the fields it
reads; no temporalio here either.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from workflows.domain import (
    CaptureMethod,
    Failure,
    FraudDecision,
    FraudResult,
    PaymentInput,
    PaymentStatus,
    PaymentView,
    ReviewDecisionKind,
    ReviewView,
)
from workflows.fraud_io import FeedbackCall, FeedbackKind, ScreeningVerdict, strictest
from workflows.gateway_io import GatewayEvent
from workflows.messages import ReviewDecision
from workflows.payment_effects import Effect, Finish, Record, Refusal, SendFraudFeedback
from workflows.rejections import Rejection


class ReviewState:
    # Set by PaymentState.
    view: PaymentView
    authorized_minor: int
    authorize_for_review: bool
    _input: PaymentInput
    _clock: Callable[[], datetime]

    # ------------------------------------------------------------ fraud result

    def fraud_failure(self, fraud: FraudResult) -> Failure | None:
        """Keep the fraud result; a failure when it blocks the payment."""
        self.view.fraud = fraud
        if fraud.score <= self._input.settings.risk_threshold and fraud.decision is not FraudDecision.BLOCK:
            return None
        return Failure(
            code="blocked_by_fraud_check",
            message=f"risk score {fraud.score} is above the threshold: " + ", ".join(fraud.reasons),
        )

    def fraud_feedback(self, kind: FeedbackKind, event: GatewayEvent | None = None) -> list[Effect]:
        """Feedback for the screening service that decided this payment; none when the rules
        decided alone (or the service never answered: it has no order to attach it to)."""
        fraud = self.view.fraud
        if fraud is None or fraud.policy is None or fraud.source != fraud.policy.provider:
            return []
        view = self.view
        call = FeedbackCall(
            provider=fraud.source,
            kind=kind,
            payment_id=view.id,
            order_id=view.order_id,
            amount=(event.amount if event and event.amount else None)
            or view.amount.with_minor(view.captured_minor or view.amount.minor),
            gateway=view.gateway,
            customer_id=view.customer_id,
            provider_payment_id=view.provider_payment_id,
            reference=fraud.reference,
            dispute_id=event.dispute_id if event else None,
            dispute_reason=event.dispute_reason if event else None,
        )
        return [SendFraudFeedback(call)]

    # ------------------------------------------------------------ manual review

    def needs_review(self) -> bool:
        """Did the fraud check hold the payment for an operator? Only a result with a policy (from
        a version that knows reviews) holds: older payments went on, and replay must agree."""
        fraud = self.view.fraud
        return fraud is not None and fraud.policy is not None and fraud.decision is FraudDecision.REVIEW

    def review_after_authorization(self) -> bool:
        """A card on a gateway that can hold funds is authorized first and captured only once
        approved; anything else (redirect, QR, wallets) is not created at the provider until then."""
        return self._input.method.type == "card" and self._input.gateway.supports_manual_capture

    def begin_review(self, events: tuple[str, ...] = ()) -> list[Effect]:
        """Hold the payment for an operator; `events` already happened in the same step."""
        fraud = self.view.fraud
        assert fraud is not None and fraud.policy is not None
        now = self._clock()
        self.view.review = ReviewView(
            requested_at=now, deadline=now + timedelta(seconds=fraud.policy.review_timeout_seconds)
        )
        data = {"score": str(fraud.score), "source": fraud.source}
        return [Record(PaymentStatus.REQUIRES_REVIEW, (*events, "review.requested"), data)]

    def review_refusal(self, request: ReviewDecision) -> Refusal | None:
        review = self.view.review
        if self.view.status is not PaymentStatus.REQUIRES_REVIEW or review is None or review.decision:
            return Refusal(
                Rejection.INVALID_STATE, f"a {self.view.status.value} payment is not waiting for review"
            )
        return None

    def review_decided(self) -> bool:
        return self.view.review is not None and self.view.review.decision is not None

    def decide_review(self, request: ReviewDecision | None) -> list[Effect]:
        """Record the decision (None: nobody decided in time, which rejects). The payment leaves
        review for the status it had before: authorized (card) or pending."""
        review = self.view.review
        assert review is not None
        if request is None:
            review.decision, review.decided_by = ReviewDecisionKind.REJECT, "timeout"
            event = "review.expired"
        else:
            review.decision, review.note = request.decision, request.note
            review.decided_by = request.decided_by or "temporal-ui"
            event = "review.approved" if request.decision is ReviewDecisionKind.APPROVE else "review.rejected"
        review.decided_at = self._clock()
        self.authorize_for_review = False
        back = PaymentStatus.AUTHORIZED if self.authorized_minor else PaymentStatus.PENDING
        data = {"decided_by": review.decided_by or ""}
        if review.note:
            data["note"] = review.note
        return [Record(back, (event,), data)]

    def review_approved(self) -> bool:
        return self.view.review is not None and self.view.review.decision is ReviewDecisionKind.APPROVE

    def review_rejection(self) -> Finish:
        """How a rejected (or expired) review ends the payment: cancelled, the order released."""
        review = self.view.review
        if review is not None and review.decided_by == "timeout":
            failure = Failure(code="review_timeout", message="no review decision before the deadline")
        else:
            failure = Failure(code="rejected_in_review", message="rejected in manual review")
        return Finish(PaymentStatus.CANCELLED, failure, "payment.cancelled", release_order=True)

    def review_answered(self) -> bool:
        """A review update has its answer: the payment went on to its next step or its end."""
        if not self.review_decided() or self.view.status in (
            PaymentStatus.REQUIRES_REVIEW,
            PaymentStatus.PENDING,
            PaymentStatus.OUTCOME_UNKNOWN,
        ):
            return False
        if self.view.status is PaymentStatus.AUTHORIZED:
            return self._input.capture_method is CaptureMethod.MANUAL  # now the merchant's to capture
        return True


def screened(rules: FraudResult, verdict: ScreeningVerdict | None) -> FraudResult:
    """The fraud result once the screening service had its say: the stricter decision and the
    higher score of the two. Without a verdict (the service stayed unreachable or refused the
    request) the policy's `on_provider_error` stands in for it."""
    policy = rules.policy
    if policy is None or policy.provider is None:
        return rules
    if verdict is None:
        return rules.model_copy(
            update={
                "decision": strictest(rules.decision, policy.on_provider_error),
                "reasons": [*rules.reasons, f"{policy.provider}_unavailable"],
            }
        )
    return FraudResult(
        score=max(rules.score, verdict.score),
        decision=strictest(rules.decision, verdict.decision),
        reasons=[*rules.reasons, *verdict.reasons],
        source=policy.provider,
        reference=verdict.reference,
        policy=policy,
    )
