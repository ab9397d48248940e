"""PaymentState's fraud rules without a server: combining the rules with a screening service, the
fallback when it is down, feedback, and the manual review's transitions."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.workflows.builders import gateway_event
from tests.workflows.test_payment_state import Clock, carry_out, new_state, result
from workflows.domain import (
    FraudDecision,
    FraudPolicy,
    FraudResult,
    PaymentStatus,
    ReviewDecisionKind,
    WalletMethod,
)
from workflows.fraud_io import FeedbackKind, ScreeningVerdict
from workflows.gateway_io import GatewayEventKind, GatewayPaymentStatus
from workflows.messages import ReviewDecision
from workflows.payment_state import ConfirmPaid, Finish, Record, SendFraudFeedback, screened
from workflows.rejections import Rejection

POLICY = FraudPolicy(provider="sift", on_provider_error=FraudDecision.REVIEW, review_timeout_seconds=3600)
RULES = FraudResult(score=20, decision=FraudDecision.ALLOW, reasons=["country_mismatch"], policy=POLICY)


@pytest.mark.parametrize(
    ("rules", "service", "decision", "score"),
    [
        (FraudDecision.ALLOW, FraudDecision.ALLOW, FraudDecision.ALLOW, 40),
        (FraudDecision.REVIEW, FraudDecision.ALLOW, FraudDecision.REVIEW, 40),
        (FraudDecision.ALLOW, FraudDecision.BLOCK, FraudDecision.BLOCK, 40),
        (FraudDecision.REVIEW, FraudDecision.BLOCK, FraudDecision.BLOCK, 40),
    ],
)
def test_the_stricter_decision_and_the_higher_score_hold(rules, service, decision, score):
    verdict = ScreeningVerdict(decision=service, score=40, reference="run_1", reasons=["sift_decision"])
    combined = screened(RULES.model_copy(update={"decision": rules}), verdict)
    assert (combined.decision, combined.score, combined.source, combined.reference) == (
        decision,
        score,
        "sift",
        "run_1",
    )
    assert combined.reasons == ["country_mismatch", "sift_decision"]


@pytest.mark.parametrize("fallback", list(FraudDecision))
def test_without_a_verdict_the_fallback_decides(fallback):
    policy = POLICY.model_copy(update={"on_provider_error": fallback})
    combined = screened(RULES.model_copy(update={"policy": policy}), None)
    assert combined.decision is fallback
    assert combined.source == "rules" and "sift_unavailable" in combined.reasons


def test_without_a_provider_the_rules_stand():
    rules = RULES.model_copy(update={"policy": FraudPolicy()})
    assert screened(rules, None) is rules


def screened_state(**overrides):
    state = new_state(**overrides)
    state.view.fraud = FraudResult(
        score=10, decision=FraudDecision.ALLOW, source="sift", reference="run_1", policy=POLICY
    )
    return state


def test_paid_sends_capture_feedback_and_a_new_dispute_sends_chargeback_feedback():
    state = screened_state()
    effects = state.apply_result(result(GatewayPaymentStatus.SUCCEEDED, provider_payment_id="pi_1"))
    assert isinstance(effects[0], ConfirmPaid)
    [feedback] = [e for e in effects if isinstance(e, SendFraudFeedback)]
    assert (feedback.call.kind, feedback.call.reference, feedback.call.provider_payment_id) == (
        FeedbackKind.CAPTURED,
        "run_1",
        "pi_1",
    )
    carry_out(state, effects)
    opened = gateway_event(
        "evt_1", GatewayEventKind.DISPUTE_OPENED, dispute_id="dp_1", dispute_reason="fraudulent"
    )
    [_, dispute] = state.apply_event(opened)
    assert isinstance(dispute, SendFraudFeedback) and dispute.call.kind is FeedbackKind.DISPUTED
    assert dispute.call.dispute_id == "dp_1"
    # The same dispute again (another event id, e.g. a status change) is not news to the service.
    again = gateway_event("evt_2", GatewayEventKind.DISPUTE_OPENED, dispute_id="dp_1")
    assert not [e for e in state.apply_event(again) if isinstance(e, SendFraudFeedback)]


def test_no_feedback_when_the_rules_decided_or_the_service_never_answered():
    state = new_state()
    state.view.fraud = RULES.model_copy(update={"reasons": ["sift_unavailable"]})  # source "rules"
    assert not [
        e
        for e in state.apply_result(result(GatewayPaymentStatus.SUCCEEDED))
        if isinstance(e, SendFraudFeedback)
    ]


def held_state(clock: Clock | None = None, **overrides):
    state = new_state(clock=clock, **overrides)
    state.view.fraud = FraudResult(score=60, decision=FraudDecision.REVIEW, policy=POLICY)
    return state


def test_a_card_held_for_review_is_authorized_straight_into_review():
    clock = Clock()
    state = held_state(clock)
    assert state.needs_review() and state.review_after_authorization()
    state.authorize_for_review = True
    assert state.capture_now() is False  # authorize only, whatever the capture settings
    [record] = state.apply_result(result(GatewayPaymentStatus.AUTHORIZED, authorized_minor=4999))
    assert isinstance(record, Record)
    assert (record.status, record.events) == (
        PaymentStatus.REQUIRES_REVIEW,
        ("payment.authorized", "review.requested"),
    )
    carry_out(state, [record])
    assert state.view.review is not None and state.view.review.deadline == clock.now + timedelta(hours=1)
    assert "held for review" in state.details()
    assert state.view.decided  # the caller of POST /v1/payments gets its answer: requires_review

    clock.now += timedelta(minutes=5)
    [back] = state.decide_review(
        ReviewDecision(decision=ReviewDecisionKind.REJECT, note="stolen", decided_by="k1")
    )
    assert (back.status, back.events, back.data) == (
        PaymentStatus.AUTHORIZED,
        ("review.rejected",),
        {"decided_by": "k1", "note": "stolen"},
    )
    assert not state.review_approved()
    finish = state.review_rejection()
    assert isinstance(finish, Finish) and finish.failure.code == "rejected_in_review" and finish.release_order


def test_a_qr_payment_is_reviewed_before_authorization_and_the_deadline_rejects():
    state = held_state(method=WalletMethod(wallet="wechat_pay", flow="native"))
    assert not state.review_after_authorization()
    carry_out(state, state.begin_review())
    assert state.status is PaymentStatus.REQUIRES_REVIEW
    [back] = state.decide_review(None)
    assert (back.status, back.events) == (PaymentStatus.PENDING, ("review.expired",))
    assert state.review_rejection().failure.code == "review_timeout"


def test_review_refused_unless_waiting_and_only_once():
    state = held_state()
    approve = ReviewDecision(decision=ReviewDecisionKind.APPROVE)
    refusal = state.review_refusal(approve)
    assert refusal is not None and refusal.rejection is Rejection.INVALID_STATE
    carry_out(state, state.begin_review())
    assert state.review_refusal(approve) is None
    carry_out(state, state.decide_review(approve))
    assert state.view.review is not None and state.view.review.decided_by == "temporal-ui"
    assert state.review_refusal(approve) is not None


def test_a_result_without_a_policy_never_holds():
    state = new_state()
    state.view.fraud = FraudResult(score=60, decision=FraudDecision.REVIEW)
    assert not state.needs_review()
