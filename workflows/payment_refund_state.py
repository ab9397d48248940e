"""A payment's refund arithmetic, apart from Temporal: booking a refund, settling it once, what is
left to refund, and the settled status that refunds and disputes leave the payment in.

`RefundState` is mixed into `PaymentState` (workflows/payment_state.py), which owns the fields it
reads; no temporalio here either.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from workflows.domain import Failure, PaymentInput, PaymentStatus, PaymentView, RefundStatus, RefundView
from workflows.gateway_io import RefundResult
from workflows.messages import RefundRequest
from workflows.payment_effects import Effect, Record

SETTLED = (
    PaymentStatus.PAID,
    PaymentStatus.PARTIALLY_REFUNDED,
    PaymentStatus.REFUNDED,
    PaymentStatus.DISPUTED,
)
_DISPUTE_CLOSED_IN_OUR_FAVOUR = ("won", "warning_closed")


class RefundState:
    # Set by PaymentState.
    view: PaymentView
    refunds_in_flight: set[str]  # refund ids whose gateway call has not returned
    _input: PaymentInput
    _clock: Callable[[], datetime]

    def find_refund(self, refund_id: str | None, provider_refund_id: str | None) -> RefundView | None:
        for refund in self.view.refunds:
            if (refund_id and refund.refund_id == refund_id) or (
                provider_refund_id and refund.provider_refund_id == provider_refund_id
            ):
                return refund
        return None

    def reserved_refunds(self) -> int:
        """Refunded or being refunded: what the next refund must fit beside."""
        return sum(r.amount.minor for r in self.view.refunds if r.status is not RefundStatus.FAILED)

    def book_refund(self, request: RefundRequest) -> tuple[RefundView, bool]:
        """The refund `request` names, booked as pending and in flight if it is new (True)."""
        existing = self.find_refund(request.refund_id, None)
        if existing is not None:
            return existing, False
        amount_minor = request.amount_minor or self.view.captured_minor - self.reserved_refunds()
        refund = RefundView(
            refund_id=request.refund_id,
            amount=self._input.amount.with_minor(amount_minor),
            reason=request.reason,
            status=RefundStatus.PENDING,
            created_at=self._clock(),
        )
        self.view.refunds.append(refund)
        self.refunds_in_flight.add(refund.refund_id)
        return refund, True

    def refund_returned(self, refund_id: str, result: RefundResult) -> list[Effect]:
        """The gateway call of a booked refund returned (PENDING: its outcome is unknown)."""
        self.refunds_in_flight.discard(refund_id)
        return self.settle_refund(refund_id, result.status, result.provider_refund_id, result.failure)

    def refund_looked_up(self, refund: RefundView, result: RefundResult) -> list[Effect]:
        """What a lookup of an unresolved refund said."""
        if result.status is RefundStatus.PENDING and result.provider_refund_id in (
            None,
            refund.provider_refund_id,
        ):
            return []  # nothing new: no transition, so a long wait does not flood the record
        return self.settle_refund(refund.refund_id, result.status, result.provider_refund_id, result.failure)

    def settle_refund(
        self, refund_id: str, status: RefundStatus, provider_refund_id: str | None, failure: Failure | None
    ) -> list[Effect]:
        refund = self.find_refund(refund_id, None)
        if refund is None:
            return []
        if provider_refund_id:
            refund.provider_refund_id = provider_refund_id
        if refund.status is RefundStatus.SUCCEEDED and status is not RefundStatus.FAILED:
            return []  # already counted; a replay must not count it twice
        if refund.status is RefundStatus.FAILED:
            return []
        refund.status = status
        refund.failure = failure
        self.view.refunded_minor = sum(
            r.amount.minor for r in self.view.refunds if r.status is RefundStatus.SUCCEEDED
        )
        settled = self.settled_status() if self.view.status in SETTLED else None
        data = {"refund_id": refund_id, "amount": str(refund.amount)}
        return [Record(settled, (f"refund.{status.value}",), data)]

    def unresolved_refunds(self) -> list[RefundView]:
        """Pending refunds nobody is waiting on: their gateway call returned without an outcome."""
        return [
            r
            for r in self.view.refunds
            if r.status is RefundStatus.PENDING and r.refund_id not in self.refunds_in_flight
        ]

    def settled_status(self) -> PaymentStatus:
        view = self.view
        if any(d.status not in _DISPUTE_CLOSED_IN_OUR_FAVOUR for d in view.disputes):
            return PaymentStatus.DISPUTED
        if view.captured_minor and view.refunded_minor >= view.captured_minor:
            return PaymentStatus.REFUNDED
        if view.refunded_minor:
            return PaymentStatus.PARTIALLY_REFUNDED
        return PaymentStatus.PAID
