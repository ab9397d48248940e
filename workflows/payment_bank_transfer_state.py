"""A bank transfer payment's rules, apart from Temporal: what a receipt of money does (the exact
amount pays; any other amount, or money after the payment was given up, is held for an operator with
both amounts), what the operator's decision does (keep it, or give it back by a manual payout), and
which receipts and decisions the updates refuse.

`BankTransferState` is mixed into `PaymentState` (workflows/payment_state.py), which owns the fields
it reads; no temporalio here either.
"""

from __future__ import annotations

from abc import abstractmethod

from workflows.domain import OPEN_STATUSES, Failure, PaymentInput, PaymentStatus, PaymentView
from workflows.messages import BankTransferReceipt, BankTransferResolution
from workflows.payment_effects import Effect, Finish, Record, Refusal
from workflows.rejections import Rejection


class BankTransferState:
    # Set by PaymentState.
    view: PaymentView
    receipts: dict[str, BankTransferReceipt]
    _input: PaymentInput

    @abstractmethod
    def pay(self, captured_minor: int) -> list[Effect]: ...

    def bank_transfer_received(self, receipt: BankTransferReceipt) -> list[Effect]:
        """Money arrived by bank transfer (a receipt `receipt_refusal` let through). The exact
        amount, in time, pays the payment; any other amount, or money after the payment was given
        up, is held for an operator with both amounts shown - never kept or lost silently."""
        if receipt.bank_reference in self.taken_bank_references():
            return []  # the same credit confirmed again (a re-import, a retried request)
        self.receipts[receipt.bank_reference] = receipt
        view = self.view
        expected = self._input.amount
        view.provider_response = {
            **view.provider_response,
            "bank_reference": receipt.bank_reference,
            "received_amount": str(receipt.amount),
            "confirmed_by": f"{receipt.source}:{receipt.confirmed_by}",
        }
        data = {
            "bank_reference": receipt.bank_reference,
            "amount": str(receipt.amount),
            "source": receipt.source,
            "confirmed_by": receipt.confirmed_by,
        }
        if view.status in OPEN_STATUSES and receipt.amount == expected:
            return [Record(None, ("bank_transfer.received",), data), *self.pay(expected.minor)]
        if view.status in OPEN_STATUSES:
            failure = Failure(
                code="amount_mismatch", message=f"received {receipt.amount}, expected {expected}"
            )
        else:
            failure = Failure(
                code="late_payment",
                message=f"received {receipt.amount} after the payment was {view.status.value} (expected {expected})",
            )
        view.next_action = None
        view.failure = failure
        data |= {"expected": str(expected), "reason": failure.code}
        return [
            Record(PaymentStatus.REQUIRES_REVIEW, ("bank_transfer.received", "payment.requires_review"), data)
        ]

    def resolve_bank_transfer(self, resolution: BankTransferResolution) -> list[Effect]:
        """The operator's decision on money held for review: keep it (the payment is paid and the
        order confirmed), or give it back by a manual bank payout to the payer (a task on the
        record, with the payer's details from the statement; the payment ends cancelled)."""
        if self.view.status is not PaymentStatus.REQUIRES_REVIEW:
            return []
        receipt = list(self.receipts.values())[-1]
        held = self.view.failure or Failure(code="review", message="held for review")
        data = {"decided_by": resolution.decided_by, "reason": held.code}
        if resolution.decision == "accept":
            return [Record(None, ("review.accepted",), data), *self.pay(receipt.amount.minor)]
        payout = data | {
            "amount": str(receipt.amount),
            "bank_reference": receipt.bank_reference,
            "payer_name": receipt.payer_name or "",
            "payer_iban": receipt.payer_iban or "",
        }
        failure = Failure(code=held.code, message=f"{held.message}; returned to the payer by bank payout")
        return [
            Record(None, ("review.refund_requested", "bank_transfer.payout_requested"), payout),
            Finish(PaymentStatus.CANCELLED, failure, "payment.cancelled", release_order=True),
        ]

    # ------------------------------------------------------------ update validators

    def taken_bank_references(self) -> set[str]:
        """This run's receipts, and the one the view carries from before a continue-as-new."""
        carried = self.view.provider_response.get("bank_reference")
        return set(self.receipts) | (
            {carried} if carried and self._input.method.type == "bank_transfer" else set()
        )

    def receipt_refusal(self, receipt: BankTransferReceipt) -> Refusal | None:
        if receipt.bank_reference in self.taken_bank_references():
            return None  # a replay: answered with the payment as it is
        if self._input.method.type != "bank_transfer":
            return Refusal(
                Rejection.NOT_SUPPORTED, "only a bank transfer payment takes a bank transfer receipt"
            )
        if receipt.amount.currency != self._input.amount.currency:
            return Refusal(
                Rejection.NOT_SUPPORTED,
                f"the payment is in {self._input.amount.currency}, not {receipt.amount.currency}",
            )
        if receipt.amount.minor <= 0:
            return Refusal(Rejection.AMOUNT_EXCEEDS, "a received amount is positive")
        if self.taken_bank_references():
            # A second credit for one payment: not this payment's to take; the statement keeps it.
            return Refusal(Rejection.INVALID_STATE, "this payment already received a bank transfer")
        return None

    def bank_transfer_review_refusal(self, resolution: BankTransferResolution) -> Refusal | None:
        if self.view.status is not PaymentStatus.REQUIRES_REVIEW:
            return Refusal(
                Rejection.INVALID_STATE, f"a {self.view.status.value} payment is not held for review"
            )
        if not self.receipts:
            return Refusal(Rejection.NOT_SUPPORTED, "this review is not about received money")
        return None
