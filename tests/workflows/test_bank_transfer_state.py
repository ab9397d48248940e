"""PaymentState's bank transfer rules: a receipt of the exact amount pays, any other amount or a late
one is held for review with both amounts, the review is resolved by accepting or by a payout, a
receipt is taken once, and only a bank transfer payment takes one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.workflows.builders import PROFILE
from tests.workflows.test_payment_state import Clock, carry_out, new_state, result
from workflows.domain import BankTransferMethod, Failure, NextAction, NextActionType, PaymentStatus
from workflows.gateway_io import GatewayPaymentStatus
from workflows.messages import BankTransferReceipt, BankTransferResolution
from workflows.money import Amount
from workflows.payment_state import ConfirmPaid, Finish, PaymentState, Record
from workflows.rejections import Rejection

FULL = Amount(minor=4999, currency="USD")
INSTRUCTIONS = NextAction(type=NextActionType.BANK_TRANSFER_INSTRUCTIONS, data={"reference": "RF00X"})
BANK_PROFILE = PROFILE.model_copy(update={"methods": ["bank_transfer"], "action_timeout_seconds": 72 * 3600})


def waiting() -> PaymentState:
    state = new_state(method=BankTransferMethod(), gateway=BANK_PROFILE)
    carry_out(
        state, state.apply_result(result(GatewayPaymentStatus.REQUIRES_ACTION, next_action=INSTRUCTIONS))
    )
    assert state.status is PaymentStatus.AUTHORIZING
    return state


def receipt(minor: int = 4999, ref: str = "BANK-1", currency: str = "USD") -> BankTransferReceipt:
    return BankTransferReceipt(
        amount=Amount(minor=minor, currency=currency),
        bank_reference=ref,
        received_at=datetime(2026, 12, 2, tzinfo=UTC),
        source="statement",
        confirmed_by="statement STMT-1 entry BANK-1",
        payer_name="Jane Payer",
        payer_iban="GB82WEST12345698765432",
    )


def test_the_gateway_sets_how_long_the_payer_has() -> None:
    assert waiting().action_timeout() == timedelta(hours=72)
    assert new_state().action_timeout() == timedelta(seconds=900)  # the policy's, for the others


def test_the_exact_amount_pays_and_says_who_confirmed() -> None:
    state = waiting()
    assert state.receipt_refusal(receipt()) is None
    effects = state.bank_transfer_received(receipt())
    assert effects[0] == Record(
        None,
        ("bank_transfer.received",),
        {
            "bank_reference": "BANK-1",
            "amount": "49.99 USD",
            "source": "statement",
            "confirmed_by": "statement STMT-1 entry BANK-1",
        },
    )
    assert isinstance(effects[1], ConfirmPaid)
    carry_out(state, effects)
    assert state.status is PaymentStatus.PAID and state.view.captured_minor == 4999
    assert state.view.next_action is None
    assert state.view.provider_response["confirmed_by"] == "statement:statement STMT-1 entry BANK-1"
    # the same credit again (a re-import): accepted by the validator, changes nothing
    assert state.receipt_refusal(receipt()) is None
    assert state.bank_transfer_received(receipt()) == []
    # another credit for a payment already paid is not taken
    assert state.receipt_refusal(receipt(ref="BANK-2")).rejection is Rejection.INVALID_STATE


def test_underpaid_is_held_for_review_then_accepted() -> None:
    state = waiting()
    carry_out(state, state.bank_transfer_received(receipt(4000)))
    assert state.status is PaymentStatus.REQUIRES_REVIEW and state.view.captured_minor == 0
    assert state.view.failure == Failure(
        code="amount_mismatch", message="received 40.00 USD, expected 49.99 USD"
    )
    assert state.view.next_action is None
    accept = BankTransferResolution(decision="accept", decided_by="key_ops")
    assert state.bank_transfer_review_refusal(accept) is None
    effects = state.resolve_bank_transfer(accept)
    assert effects[0] == Record(
        None, ("review.accepted",), {"decided_by": "key_ops", "reason": "amount_mismatch"}
    )
    carry_out(state, effects)
    assert state.status is PaymentStatus.PAID and state.view.captured_minor == 4000
    assert state.view.failure is None
    assert state.bank_transfer_review_refusal(accept).rejection is Rejection.INVALID_STATE


def test_overpaid_refund_is_a_payout_with_the_payers_details() -> None:
    state = waiting()
    carry_out(state, state.bank_transfer_received(receipt(6000)))
    assert state.view.failure.message == "received 60.00 USD, expected 49.99 USD"
    record, finish = state.resolve_bank_transfer(
        BankTransferResolution(decision="refund", decided_by="key_ops")
    )
    assert record.events == ("review.refund_requested", "bank_transfer.payout_requested")
    assert record.data["payer_iban"] == "GB82WEST12345698765432" and record.data["amount"] == "60.00 USD"
    assert isinstance(finish, Finish) and finish.release_order and finish.status is PaymentStatus.CANCELLED
    carry_out(state, [record, finish])
    assert state.status is PaymentStatus.CANCELLED and state.view.failure.code == "amount_mismatch"


def test_money_after_expiry_is_held_not_refunded_automatically() -> None:
    clock = Clock()
    state = new_state(method=BankTransferMethod(), gateway=BANK_PROFILE, clock=clock)
    carry_out(
        state, state.apply_result(result(GatewayPaymentStatus.REQUIRES_ACTION, next_action=INSTRUCTIONS))
    )
    carry_out(
        state,
        state.apply_void_result(
            result(GatewayPaymentStatus.CANCELLED), False, Failure(code="action_timeout", message="x")
        ),
    )
    assert state.status is PaymentStatus.CANCELLED
    carry_out(state, state.bank_transfer_received(receipt()))  # the exact amount, but too late
    assert state.status is PaymentStatus.REQUIRES_REVIEW and state.view.failure.code == "late_payment"
    carry_out(state, state.resolve_bank_transfer(BankTransferResolution(decision="accept", decided_by="ops")))
    assert state.status is PaymentStatus.PAID


def test_receipts_a_payment_cannot_take_are_refused() -> None:
    assert new_state().receipt_refusal(receipt()).rejection is Rejection.NOT_SUPPORTED  # a card payment
    assert waiting().receipt_refusal(receipt(currency="EUR")).rejection is Rejection.NOT_SUPPORTED
    resolution = BankTransferResolution(decision="accept", decided_by="ops")
    assert waiting().bank_transfer_review_refusal(resolution).rejection is Rejection.INVALID_STATE


def test_a_taken_credit_is_still_known_after_continue_as_new() -> None:
    state = waiting()
    carry_out(state, state.bank_transfer_received(receipt()))
    later = new_state(method=BankTransferMethod(), gateway=BANK_PROFILE)
    later.restore(state.resume_point())  # the next run of a long-lived payment
    assert later.receipt_refusal(receipt()) is None and later.bank_transfer_received(receipt()) == []
    assert later.status is PaymentStatus.PAID
    assert later.receipt_refusal(receipt(ref="BANK-2")).rejection is Rejection.INVALID_STATE
