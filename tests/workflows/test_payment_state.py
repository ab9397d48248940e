"""PaymentState, the payment's decisions, without a Temporal server: each rule, the status
transitions, refund arithmetic, disputes, and that applying the same thing twice changes nothing.

`carry_out` does with the effects what PaymentWorkflow._run does, minus the activities, so that a
test can take a payment through several steps."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from tests.workflows.builders import PROFILE, gateway_event, payment_input
from workflows.domain import (
    CaptureMethod,
    Failure,
    FraudDecision,
    FraudResult,
    NextAction,
    NextActionType,
    PaymentStatus,
    RefundStatus,
)
from workflows.gateway_io import GatewayEventKind, GatewayPaymentStatus, GatewayResult, RefundResult
from workflows.messages import CancelRequest, CaptureRequest, DecisionRequest, RefundRequest
from workflows.money import Amount
from workflows.patches import HOLD_REFUND_EVENTS_UNTIL_PAID
from workflows.payment_effects import ConfirmPaid, Effect, Finish, Record, RefundLatePayment
from workflows.payment_state import PaymentState, failure_for, refused_failure
from workflows.rejections import Rejection

FULL = Amount(minor=4999, currency="USD")
START = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
QR = NextAction(type=NextActionType.DISPLAY_QR_CODE, qr_code="weixin://pay")


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def new_state(
    patched: bool = True, asked: list[str] | None = None, clock: Clock | None = None, **overrides
) -> PaymentState:
    """`patched`: what every patch check answers; `asked` collects the ids checked."""

    def is_patched(patch_id: str) -> bool:
        if asked is not None:
            asked.append(patch_id)
        return patched

    return PaymentState(payment_input("pay_1", **overrides), clock=clock or Clock(), patched=is_patched)


def carry_out(state: PaymentState, effects: list[Effect]) -> None:
    for effect in effects:
        if isinstance(effect, Record):
            state.advance(effect.status)
        elif isinstance(effect, Finish):
            state.finish(effect.failure)
            state.advance(effect.status)
        elif isinstance(effect, ConfirmPaid):
            state.complete()
            state.advance(PaymentStatus.PAID)
            state.paid()
        elif isinstance(effect, RefundLatePayment):
            refund, _ = state.book_refund(effect.request)
            carry_out(state, state.refund_returned(refund.refund_id, succeeded(refund.refund_id)))


def succeeded(refund_id: str, provider_refund_id: str | None = None) -> RefundResult:
    return RefundResult(
        refund_id=refund_id, status=RefundStatus.SUCCEEDED, provider_refund_id=provider_refund_id
    )


def result(status: GatewayPaymentStatus, **fields) -> GatewayResult:
    return GatewayResult(status=status, **fields)


def paid_state(**overrides) -> PaymentState:
    state = new_state(**overrides)
    carry_out(state, state.apply_result(result(GatewayPaymentStatus.SUCCEEDED, provider_payment_id="pi_1")))
    assert state.status is PaymentStatus.PAID
    return state


def authorized_state(**overrides) -> PaymentState:
    state = new_state(capture_method=CaptureMethod.MANUAL, **overrides)
    carry_out(state, state.apply_result(result(GatewayPaymentStatus.AUTHORIZED, authorized_minor=4999)))
    assert state.status is PaymentStatus.AUTHORIZED
    return state


def refund_event(event_id: str, kind=GatewayEventKind.REFUND_SUCCEEDED, **fields):
    return gateway_event(event_id, kind, **fields)


@pytest.mark.parametrize(
    "module",
    [
        "workflows.payment_state",
        "workflows.payment_effects",
        "workflows.payment_refund_state",
        "workflows.payment_review_state",
        "workflows.payment_bank_transfer_state",
    ],
)
def test_the_state_modules_import_no_temporal(module):
    code = f"import sys, {module}; print(sorted(m for m in sys.modules if 'temporalio' in m))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------- recording


def test_advance_moves_bumps_the_version_and_stamps_the_time():
    clock = Clock()
    state = new_state(clock=clock)
    assert (state.view.created_at, state.view.version) == (START, 0)
    clock.now = START + timedelta(seconds=5)
    assert state.advance(PaymentStatus.AUTHORIZING) is True
    assert (state.status, state.view.version, state.view.updated_at) == (
        PaymentStatus.AUTHORIZING,
        1,
        START + timedelta(seconds=5),
    )
    assert state.advance(PaymentStatus.AUTHORIZING) is False  # same status: recorded, not moved
    assert state.advance(None) is False
    assert (state.status, state.view.version) == (PaymentStatus.AUTHORIZING, 3)


def test_details_say_status_amounts_failure_and_disputes():
    state = paid_state()
    carry_out(
        state, state.apply_event(gateway_event("evt_d", GatewayEventKind.DISPUTE_OPENED, dispute_id="dp_1"))
    )
    details = state.details()
    assert (
        "**disputed**" in details and "captured 49.99 USD" in details and "dp_1 (needs_response)" in details
    )


# ---------------------------------------------------------------- gateway results


def test_success_from_pending_confirms_and_clears_what_was_waiting():
    state = new_state()
    state.view.next_action = QR
    effects = state.apply_result(
        result(GatewayPaymentStatus.SUCCEEDED, provider_payment_id="pi_9", captured_minor=4000)
    )
    assert effects == [ConfirmPaid()]
    assert (state.view.captured_minor, state.view.next_action, state.view.provider_payment_id) == (
        4000,
        None,
        "pi_9",
    )
    assert state.status is PaymentStatus.PENDING  # the workflow moves it once the record is written


def test_success_without_amounts_captures_the_payment_amount():
    state = new_state()
    state.apply_result(result(GatewayPaymentStatus.SUCCEEDED))
    assert state.view.captured_minor == 4999


def test_authorized_while_open_records_authorized_and_keeps_the_authorized_amount():
    state = new_state()
    state.view.next_action = QR
    assert state.apply_result(result(GatewayPaymentStatus.AUTHORIZED, authorized_minor=3000)) == [
        Record(PaymentStatus.AUTHORIZED, ("payment.authorized",))
    ]
    assert (state.authorized_minor, state.view.next_action) == (3000, None)


def test_requires_action_moves_to_authorizing_once_and_keeps_the_latest_action():
    state = new_state()
    effects = state.apply_result(result(GatewayPaymentStatus.REQUIRES_ACTION, next_action=QR))
    assert effects == [Record(PaymentStatus.AUTHORIZING, ("payment.requires_action",))]
    carry_out(state, effects)
    other = NextAction(type=NextActionType.REDIRECT_TO_URL, url="https://acs.example")
    assert state.apply_result(result(GatewayPaymentStatus.PROCESSING, next_action=other)) == []
    assert state.view.next_action == other


@pytest.mark.parametrize(
    ("status", "final", "code"),
    [
        (GatewayPaymentStatus.DECLINED, PaymentStatus.FAILED, "declined"),
        (GatewayPaymentStatus.NOT_FOUND, PaymentStatus.FAILED, "not_processed"),
        (GatewayPaymentStatus.CANCELLED, PaymentStatus.CANCELLED, "cancelled"),
    ],
)
def test_no_money_moved_finishes_and_releases_the_order(status, final, code):
    state = new_state()
    state.view.next_action = QR
    assert state.apply_result(result(status)) == [
        Finish(final, failure_for(status), f"payment.{final.value}", release_order=True)
    ]
    assert failure_for(status).code == code
    assert state.view.next_action is None


def test_the_gateway_failure_is_kept_when_given():
    failure = Failure(code="card_declined", message="insufficient funds", decline_code="insufficient_funds")
    (effect,) = new_state().apply_result(result(GatewayPaymentStatus.DECLINED, failure=failure))
    assert isinstance(effect, Finish) and effect.failure == failure


def test_an_authorized_payment_can_still_fail():
    state = authorized_state()
    (effect,) = state.apply_result(result(GatewayPaymentStatus.DECLINED))
    assert isinstance(effect, Finish) and effect.status is PaymentStatus.FAILED


@pytest.mark.parametrize(
    "status",
    [
        GatewayPaymentStatus.AUTHORIZED,
        GatewayPaymentStatus.REQUIRES_ACTION,
        GatewayPaymentStatus.DECLINED,
        GatewayPaymentStatus.CANCELLED,
        GatewayPaymentStatus.NOT_FOUND,
        GatewayPaymentStatus.SUCCEEDED,
    ],
)
def test_a_paid_payment_never_moves_backwards(status):
    state = paid_state()
    before = state.view.model_copy(deep=True)
    assert state.apply_result(result(status)) == []
    assert state.view == before


def test_money_after_the_payment_was_given_up_is_refunded_and_the_status_kept():
    state = new_state()
    carry_out(state, state.apply_result(result(GatewayPaymentStatus.DECLINED)))
    assert state.status is PaymentStatus.FAILED
    effects = state.apply_result(result(GatewayPaymentStatus.SUCCEEDED, captured_minor=4999))
    assert effects == [Record(None, ("payment.late_success",)), RefundLatePayment()]
    carry_out(state, effects)
    assert state.status is PaymentStatus.FAILED
    assert [(r.refund_id, r.amount.minor, r.status) for r in state.view.refunds] == [
        ("late", 4999, RefundStatus.SUCCEEDED)
    ]


def test_void_answers():
    failure = Failure(code="cancelled", message="cancelled before capture")
    state = authorized_state()
    assert state.apply_void_result(result(GatewayPaymentStatus.CANCELLED), True, failure) == [
        Finish(PaymentStatus.CANCELLED, failure, "payment.cancelled", release_order=True)
    ]
    # Still authorized after a void of an authorized payment is not "too late": cancelled.
    assert state.apply_void_result(result(GatewayPaymentStatus.AUTHORIZED), True, failure)[0] == Finish(
        PaymentStatus.CANCELLED, failure, "payment.cancelled", release_order=True
    )
    assert state.apply_void_result(result(GatewayPaymentStatus.SUCCEEDED), True, failure) == [ConfirmPaid()]
    # The customer finished just before an abandoned 3-D Secure payment was voided.
    waiting = new_state()
    carry_out(waiting, waiting.apply_result(result(GatewayPaymentStatus.REQUIRES_ACTION)))
    assert waiting.apply_void_result(result(GatewayPaymentStatus.AUTHORIZED), False, failure) == [
        Record(PaymentStatus.AUTHORIZED, ("payment.authorized",))
    ]


# ---------------------------------------------------------------- checks before the gateway


def test_fraud_rules():
    state = new_state()
    assert state.fraud_failure(FraudResult(score=75, decision=FraudDecision.REVIEW)) is None
    assert state.view.fraud is not None and state.view.fraud.score == 75
    high = state.fraud_failure(FraudResult(score=76, decision=FraudDecision.ALLOW, reasons=["velocity"]))
    assert high is not None and high.code == "blocked_by_fraud_check" and "velocity" in high.message
    assert state.fraud_failure(FraudResult(score=1, decision=FraudDecision.BLOCK)) is not None


def test_capture_now_three_ds_and_the_capture_amount():
    assert new_state().capture_now() is True
    assert new_state(settings={"capture_delay_seconds": 60}).capture_now() is False
    wallet = PROFILE.model_copy(update={"supports_manual_capture": False})
    assert new_state(gateway=wallet, settings={"capture_delay_seconds": 60}).capture_now() is True
    assert new_state(capture_method=CaptureMethod.MANUAL).capture_now() is False
    assert new_state(settings={"tds_threshold_minor": 4999}).request_three_ds() is True
    assert new_state(settings={"tds_threshold_minor": 5000}).request_three_ds() is False
    assert new_state().request_three_ds() is False
    state = authorized_state()
    state.authorized_minor = 4000
    assert state.capture_amount_minor(None) == 4000
    assert state.capture_amount_minor(CaptureRequest()) == 4000
    assert state.capture_amount_minor(CaptureRequest(amount_minor=1000)) == 1000


# ---------------------------------------------------------------- webhook events


def test_an_event_id_is_taken_once():
    state = new_state()
    event = gateway_event("evt_1", GatewayEventKind.PAYMENT_SUCCEEDED, amount=FULL)
    assert state.receive(event) is True
    assert state.receive(event) is False
    assert state.inbox == [event]


def test_payment_events_map_onto_results():
    state = new_state()
    assert state.apply_event(gateway_event("e1", GatewayEventKind.PAYMENT_SUCCEEDED, amount=FULL)) == [
        ConfirmPaid()
    ]
    state = new_state()
    assert state.apply_event(
        gateway_event("e2", GatewayEventKind.PAYMENT_AUTHORIZED, provider_payment_id="pi_7")
    ) == [Record(PaymentStatus.AUTHORIZED, ("payment.authorized",))]
    assert state.view.provider_payment_id == "pi_7"
    (effect,) = new_state().apply_event(gateway_event("e3", GatewayEventKind.PAYMENT_CANCELLED))
    assert isinstance(effect, Finish) and effect.status is PaymentStatus.CANCELLED
    failure = Failure(code="expired", message="the QR code expired")
    (effect,) = new_state().apply_event(gateway_event("e4", GatewayEventKind.PAYMENT_FAILED, failure=failure))
    assert isinstance(effect, Finish) and effect.failure == failure
    assert new_state().apply_event(gateway_event("e5", GatewayEventKind.UNKNOWN)) == []


def test_a_provider_payment_id_from_an_event_never_replaces_the_known_one():
    state = paid_state()
    state.apply_event(gateway_event("e1", GatewayEventKind.UNKNOWN, provider_payment_id="pi_other"))
    assert state.view.provider_payment_id == "pi_1"


def test_stale_payment_events_change_nothing():
    state = paid_state()
    before = state.view.model_copy(deep=True)
    for kind in (
        GatewayEventKind.PAYMENT_SUCCEEDED,
        GatewayEventKind.PAYMENT_AUTHORIZED,
        GatewayEventKind.PAYMENT_FAILED,
    ):
        assert state.apply_event(gateway_event(f"evt_{kind.value}", kind)) == []
    assert state.view == before
    # An authorized payment no longer fails on a failure event: only an open one does.
    assert authorized_state().apply_event(gateway_event("e", GatewayEventKind.PAYMENT_FAILED)) == []


def test_another_amount_than_asked_is_recorded_on_its_own_and_not_paid():
    state = new_state()
    other = Amount(minor=100, currency="USD")
    assert state.apply_event(gateway_event("evt_x", GatewayEventKind.PAYMENT_SUCCEEDED, amount=other)) == [
        Record(None, ("webhook.amount_mismatch",), {"event_id": "evt_x", "amount": str(other)}, alone=True)
    ]
    assert state.view.captured_minor == 0


# ---------------------------------------------------------------- disputes


def test_a_dispute_moves_a_settled_payment_and_winning_it_moves_it_back():
    state = paid_state()
    opened = gateway_event("evt_d1", GatewayEventKind.DISPUTE_OPENED, dispute_id="dp_1", amount=FULL)
    effects = state.apply_event(opened)
    dp_1 = {"dispute_id": "dp_1"}
    assert effects == [Record(PaymentStatus.DISPUTED, ("dispute.dispute.opened",), dp_1)]
    carry_out(state, effects)
    won = gateway_event("evt_d2", GatewayEventKind.DISPUTE_CLOSED, dispute_id="dp_1", dispute_status="won")
    assert state.apply_event(won) == [Record(PaymentStatus.PAID, ("dispute.won",), dp_1)]
    assert [(d.dispute_id, d.status, d.amount) for d in state.view.disputes] == [("dp_1", "won", FULL)]


def test_a_lost_dispute_keeps_the_payment_disputed_and_one_open_dispute_is_enough():
    state = paid_state()
    for event_id, dispute_id, status in (("e1", "dp_1", "needs_response"), ("e2", "dp_2", "needs_response")):
        kind = GatewayEventKind.DISPUTE_OPENED
        carry_out(
            state,
            state.apply_event(gateway_event(event_id, kind, dispute_id=dispute_id, dispute_status=status)),
        )
    closed = GatewayEventKind.DISPUTE_CLOSED
    assert state.apply_event(gateway_event("e3", closed, dispute_id="dp_1", dispute_status="won"))[
        0
    ].status is (PaymentStatus.DISPUTED)
    assert state.apply_event(gateway_event("e4", closed, dispute_id="dp_2", dispute_status="lost"))[
        0
    ].status is (PaymentStatus.DISPUTED)
    assert len(state.view.disputes) == 2


def test_a_dispute_before_settlement_is_recorded_without_moving():
    state = new_state()
    assert state.apply_event(gateway_event("e1", GatewayEventKind.DISPUTE_OPENED)) == [
        Record(None, ("dispute.dispute.opened",), {"dispute_id": "e1"})  # no id of its own: the event's
    ]
    assert [(d.dispute_id, d.status) for d in state.view.disputes] == [("e1", "needs_response")]


# ---------------------------------------------------------------- refunds


def test_refunds_book_what_is_left_and_settle_into_partially_then_fully_refunded():
    state = paid_state()
    r1, new = state.book_refund(RefundRequest(refund_id="r1", amount_minor=1000))
    assert new and r1.amount.minor == 1000 and r1.status is RefundStatus.PENDING
    assert state.refunds_in_flight == {"r1"}
    r2, _ = state.book_refund(RefundRequest(refund_id="r2"))
    assert r2.amount.minor == 3999  # what is left beside r1, pending
    assert state.book_refund(RefundRequest(refund_id="r1")) == (r1, False)

    effects = state.refund_returned("r1", succeeded("r1", "re_1"))
    assert effects == [
        Record(
            PaymentStatus.PARTIALLY_REFUNDED,
            ("refund.succeeded",),
            {"refund_id": "r1", "amount": "10.00 USD"},
        )
    ]
    carry_out(state, effects)
    assert (state.view.refunded_minor, r1.provider_refund_id, state.refunds_in_flight) == (
        1000,
        "re_1",
        {"r2"},
    )
    carry_out(state, state.refund_returned("r2", succeeded("r2")))
    assert (state.status, state.view.refunded_minor) == (PaymentStatus.REFUNDED, 4999)


def test_a_failed_refund_frees_its_amount_and_stays_failed():
    state = paid_state()
    state.book_refund(RefundRequest(refund_id="r1", amount_minor=1000))
    assert state.reserved_refunds() == 1000
    failure = refused_failure("GatewayInvalidRequest", "amount too large")
    carry_out(
        state,
        state.refund_returned(
            "r1", RefundResult(refund_id="r1", status=RefundStatus.FAILED, failure=failure)
        ),
    )
    assert state.reserved_refunds() == 0
    assert state.settle_refund("r1", RefundStatus.SUCCEEDED, None, None) == []
    assert state.find_refund("r1", None).status is RefundStatus.FAILED


def test_a_succeeded_refund_is_counted_once_but_may_still_fail_later():
    state = paid_state()
    state.book_refund(RefundRequest(refund_id="r1", amount_minor=1000))
    carry_out(state, state.refund_returned("r1", succeeded("r1")))
    assert state.settle_refund("r1", RefundStatus.SUCCEEDED, None, None) == []
    assert state.settle_refund("r1", RefundStatus.PENDING, None, None) == []
    assert state.view.refunded_minor == 1000
    # The provider reports the refund failed after all (e.g. the card was closed).
    carry_out(state, state.settle_refund("r1", RefundStatus.FAILED, None, None))
    assert (state.view.refunded_minor, state.status) == (0, PaymentStatus.PAID)


def test_an_unknown_refund_outcome_is_unresolved_until_a_lookup_says_something_new():
    state = paid_state()
    state.book_refund(RefundRequest(refund_id="r1"))
    assert state.unresolved_refunds() == []  # its gateway call is still out
    pending = RefundResult(refund_id="r1", status=RefundStatus.PENDING)
    assert state.refund_returned("r1", pending)[0].events == ("refund.pending",)
    (refund,) = state.unresolved_refunds()
    assert state.refund_looked_up(refund, pending) == []  # nothing new: nothing recorded
    assert state.refund_looked_up(refund, pending.model_copy(update={"provider_refund_id": "re_1"})) != []
    assert refund.provider_refund_id == "re_1"
    carry_out(state, state.refund_looked_up(refund, succeeded("r1", "re_1")))
    assert state.unresolved_refunds() == [] and state.view.refunded_minor == 4999


def test_a_refund_made_at_the_provider_is_recorded_within_what_is_left():
    state = paid_state()
    event = refund_event("evt_r", provider_refund_id="re_dash", amount=Amount(minor=999, currency="USD"))
    carry_out(state, state.apply_event(event))
    assert [(r.refund_id, r.status, r.reason) for r in state.view.refunds] == [
        ("ext_re_dash", RefundStatus.SUCCEEDED, "made at the provider")
    ]
    too_much = refund_event("evt_big", provider_refund_id="re_big", amount=FULL)
    assert state.apply_event(too_much) == [
        Record(None, ("refund.unexpected_amount",), {"event_id": "evt_big"})
    ]
    # Nothing to match an unknown failed refund, or one without an amount or an id, with.
    assert (
        state.apply_event(refund_event("e1", GatewayEventKind.REFUND_FAILED, provider_refund_id="re_x")) == []
    )
    assert state.apply_event(refund_event("e2", provider_refund_id="re_y")) == []
    assert state.apply_event(refund_event("e3", amount=FULL)) == []


def test_the_same_refund_event_applied_twice_counts_once():
    state = paid_state()
    state.book_refund(RefundRequest(refund_id="r1", amount_minor=1000))
    carry_out(state, state.refund_returned("r1", succeeded("r1", "re_1")))
    version = state.view.version
    event = refund_event("evt_r", provider_refund_id="re_1", amount=Amount(minor=1000, currency="USD"))
    for redelivery in (event, event.model_copy(update={"event_id": "evt_r_again"})):
        assert state.apply_event(redelivery) == []
    assert (state.view.refunded_minor, len(state.view.refunds), state.view.version) == (1000, 1, version)


def test_a_refund_notified_before_the_payment_succeeded_is_held_then_applied_once_paid():
    asked: list[str] = []
    state = new_state(asked=asked)
    carry_out(state, state.apply_result(result(GatewayPaymentStatus.REQUIRES_ACTION, next_action=QR)))
    assert asked == []  # asked only where the held behaviour differs
    early = refund_event("evt_r", provider_refund_id="re_1", amount=Amount(minor=999, currency="USD"))
    assert state.apply_event(early) == [Record(None, ("refund.held_until_paid",), {"event_id": "evt_r"})]
    assert asked == [HOLD_REFUND_EVENTS_UNTIL_PAID.id]
    assert (state.held_refund_events, state.view.refunds) == ([early], [])

    carry_out(
        state, state.apply_event(gateway_event("evt_ok", GatewayEventKind.PAYMENT_SUCCEEDED, amount=FULL))
    )
    assert state.inbox == [early] and state.held_refund_events == []
    carry_out(state, state.apply_event(state.inbox.pop(0)))
    assert (state.status, state.view.refunded_minor) == (PaymentStatus.PARTIALLY_REFUNDED, 999)
    assert asked == [HOLD_REFUND_EVENTS_UNTIL_PAID.id]  # a settled payment does not ask


def test_without_the_patch_an_early_refund_is_dropped_as_it_was():
    state = new_state(patched=False)
    early = refund_event("evt_r", provider_refund_id="re_1", amount=Amount(minor=999, currency="USD"))
    assert state.apply_event(early) == [Record(None, ("refund.unexpected_amount",), {"event_id": "evt_r"})]
    assert state.held_refund_events == []


def test_refused_failure_codes():
    assert refused_failure("GatewayInvalidRequest", "bad").code == "gateway_invalid_request"
    assert refused_failure(None, "bad").code == "gateway_error"
    assert refused_failure("", "bad") == Failure(code="gateway_error", message="bad")


# ---------------------------------------------------------------- requests


def test_decide_refuses_another_request_under_the_same_key():
    state = new_state()
    assert state.decide_refusal(DecisionRequest(request_fingerprint="fp-request")) is None
    refusal = state.decide_refusal(DecisionRequest(request_fingerprint="other"))
    assert refusal is not None and refusal.rejection is Rejection.IDEMPOTENCY_KEY_REUSED


def test_capture_rules():
    assert paid_state().capture_refusal(CaptureRequest(), capture_requested=False) == (
        Rejection.INVALID_STATE,
        "this payment captures automatically",
    )
    state = authorized_state()
    assert state.capture_refusal(CaptureRequest(), capture_requested=False) is None
    assert state.capture_refusal(CaptureRequest(amount_minor=1000), capture_requested=False) is None
    assert (
        state.capture_refusal(CaptureRequest(), capture_requested=True).rejection is Rejection.INVALID_STATE
    )
    too_much = state.capture_refusal(CaptureRequest(amount_minor=5000), capture_requested=False)
    assert too_much == (Rejection.AMOUNT_EXCEEDS, "at most 49.99 USD can be captured")
    whole = authorized_state(gateway=PROFILE.model_copy(update={"supports_partial_capture": False}))
    assert whole.capture_refusal(CaptureRequest(amount_minor=1000), capture_requested=False) == (
        Rejection.NOT_SUPPORTED,
        "Fake does not capture partially",
    )
    assert state.capture_answered() is False
    state.advance(PaymentStatus.OUTCOME_UNKNOWN)
    assert state.capture_answered() is False
    state.advance(PaymentStatus.PAID)
    assert state.capture_answered() is True


def test_cancel_rules():
    state = authorized_state()
    assert state.cancel_refusal(CancelRequest()) is None
    assert state.cancel_answered() is False
    paid = paid_state()
    refusal = paid.cancel_refusal(CancelRequest())
    assert (
        refusal is not None
        and refusal.rejection is Rejection.INVALID_STATE
        and "refund it" in refusal.message
    )
    assert paid.cancel_answered() is True


def test_refund_rules():
    assert (
        authorized_state().refund_refusal(RefundRequest(refund_id="r1")).rejection is Rejection.INVALID_STATE
    )
    state = paid_state()
    assert state.refund_refusal(RefundRequest(refund_id="r1", amount_minor=4999)) is None
    assert state.refund_refusal(RefundRequest(refund_id="r1", amount_minor=5000)) == (
        Rejection.AMOUNT_EXCEEDS,
        "at most 49.99 USD is left to refund",
    )
    state.book_refund(RefundRequest(refund_id="r1"))
    assert state.refund_refusal(RefundRequest(refund_id="r1")) is None  # the same request again
    assert state.refund_refusal(RefundRequest(refund_id="r2")) == (
        Rejection.AMOUNT_EXCEEDS,
        "the payment is already fully refunded",
    )
