"""A payment's decisions, apart from Temporal: what a gateway result, a webhook event or a refund
outcome does to the payment, and which requests its state allows.

`PaymentState` holds the view and the bookkeeping around it. Its methods change the state at once
and return the *effects* the workflow must then carry out, in order (record a transition, finish the
payment, confirm the order, refund money that came too late); the workflow (workflows/payment.py)
owns every wait, activity and message. Nothing here imports temporalio: the clock and the patch check
are handed in, so the rules are unit-tested without a server (tests/workflows/test_payment_state.py).

Rules kept here:
- Never backwards: a late or repeated result or event does not undo a settled or failed payment.
- Webhook events are applied at most once (by provider event id); a refund is counted once.
- Money that arrives after the payment was given up is refunded, not kept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple

from workflows.domain import (
    FINAL_FAILURE_STATUSES,
    CaptureMethod,
    DisputeView,
    Failure,
    FraudDecision,
    FraudResult,
    PaymentInput,
    PaymentResume,
    PaymentStatus,
    PaymentView,
    RefundStatus,
    RefundView,
)
from workflows.gateway_io import (
    GatewayEvent,
    GatewayEventKind,
    GatewayPaymentStatus,
    GatewayResult,
    RefundResult,
)
from workflows.messages import (
    BankTransferReceipt,
    BankTransferResolution,
    CancelRequest,
    CaptureRequest,
    DecisionRequest,
    RefundRequest,
)
from workflows.patches import HOLD_REFUND_EVENTS_UNTIL_PAID
from workflows.payment_resume import SEEN_EVENT_IDS_KEPT
from workflows.rejections import Rejection

# Statuses in which the payment is waiting on the customer or the provider.
OPEN = (PaymentStatus.PENDING, PaymentStatus.AUTHORIZING, PaymentStatus.OUTCOME_UNKNOWN)
SETTLED = (
    PaymentStatus.PAID,
    PaymentStatus.PARTIALLY_REFUNDED,
    PaymentStatus.REFUNDED,
    PaymentStatus.DISPUTED,
)
CANCELLABLE = (PaymentStatus.PENDING, PaymentStatus.AUTHORIZING, PaymentStatus.AUTHORIZED)
_DISPUTE_CLOSED_IN_OUR_FAVOUR = ("won", "warning_closed")
# What a capture (or the lookup after one with an unknown outcome) may answer while the money is
# still only held: the capture has not happened, or not yet.
NOT_CAPTURED_YET = (
    GatewayPaymentStatus.AUTHORIZED,
    GatewayPaymentStatus.PROCESSING,
    GatewayPaymentStatus.REQUIRES_ACTION,
)
PAID_EVENTS = ("payment.captured", "order.paid", "payment.completed")


# ---------------------------------------------------------------- effects


@dataclass(frozen=True)
class Record:
    """Record a transition: move to `status` (None: stay where it is) with `events` on the record.
    `alone`: a finding of its own, never merged with records carried from before."""

    status: PaymentStatus | None
    events: tuple[str, ...] = ()
    data: dict[str, str] = field(default_factory=dict)
    alone: bool = False


@dataclass(frozen=True)
class Finish:
    """Release the order (when `release_order`), then end the payment: `PaymentState.finish`."""

    status: PaymentStatus
    failure: Failure
    event: str
    release_order: bool


@dataclass(frozen=True)
class ConfirmPaid:
    """Confirm the order and record the payment paid (`PAID_EVENTS`), then `PaymentState.paid`."""


@dataclass(frozen=True)
class RefundLatePayment:
    """Give back money that arrived after the payment was closed: refund all that was captured."""

    request: RefundRequest = field(
        default_factory=lambda: RefundRequest(
            refund_id="late", reason="payment completed after it was closed"
        )
    )


Effect = Record | Finish | ConfirmPaid | RefundLatePayment


class Refusal(NamedTuple):
    """Why a request is refused: the workflow rejects the update with it."""

    rejection: Rejection
    message: str


# ---------------------------------------------------------------- the state


class PaymentState:
    def __init__(
        self,
        input: PaymentInput,
        *,
        clock: Callable[[], datetime],
        patched: Callable[[str], bool],
    ) -> None:
        """`clock` is the workflow's clock; `patched(id)` tells whether a patch applies to this run
        (`workflow.patched`): asked only where the patched behaviour differs, as Temporal expects."""
        self._input = input
        self._clock = clock
        self._patched = patched
        now = clock()
        self.view = PaymentView(
            id=input.payment_id,
            merchant_id=input.merchant_id,
            order_id=input.order_id,
            gateway=input.gateway.id,
            status=PaymentStatus.PENDING,
            amount=input.amount,
            capture_method=input.capture_method,
            method=input.method,
            customer_id=input.customer_id,
            customer_ip=input.customer_ip,
            metadata=input.metadata,
            created_at=now,
            updated_at=now,
        )
        self.authorized_minor = 0
        # Ordered (a dict as an ordered set): a continue-as-new carries the most recent ones.
        self._seen_event_ids: dict[str, None] = {}
        self.inbox: list[GatewayEvent] = []  # verified, not yet applied
        # Refund notifications that overtook the payment's own confirmation: applied once it settles.
        self.held_refund_events: list[GatewayEvent] = []
        self.refunds_in_flight: set[str] = set()  # refund ids whose gateway call has not returned
        # Bank transfers received, by the bank's reference: each is taken once.
        self.receipts: dict[str, BankTransferReceipt] = {}

    @property
    def status(self) -> PaymentStatus:
        return self.view.status

    # ------------------------------------------------------------ across runs

    def restore(self, resume: PaymentResume) -> None:
        """Take up the state a previous run (or the store, for a reopened payment) left."""
        self.view = resume.view.model_copy(deep=True)
        self.authorized_minor = resume.authorized_minor
        self._seen_event_ids = dict.fromkeys(resume.seen_event_ids)

    def resume_point(self) -> PaymentResume:
        """What the next run needs, bounded: the view and the most recent event ids. Only taken
        with the inbox empty; refund events held for a success that never came stay dropped."""
        return PaymentResume(
            view=self.view,
            authorized_minor=self.authorized_minor,
            seen_event_ids=list(self._seen_event_ids)[-SEEN_EVENT_IDS_KEPT:],
        )

    # ------------------------------------------------------------ recording

    def advance(self, status: PaymentStatus | None) -> bool:
        """A transition: move to `status` (None: stay), bump the version. True if the status moved."""
        view = self.view
        if status is None or status is view.status:
            moved = False
        else:
            view.status, moved = status, True
        view.version += 1
        view.updated_at = self._clock()
        return moved

    def finish(self, failure: Failure) -> None:
        """The payment ends without money kept (the `Finish` effect, once the order is released)."""
        self.view.failure = failure
        self.complete()

    def complete(self) -> None:
        self.view.completed_at = self._clock()

    def details(self) -> str:
        """What the Temporal UI shows for this payment (markdown)."""
        view = self.view
        lines = [
            f"**{view.status.value}** · {view.amount} · order `{view.order_id}` · {view.gateway}",
        ]
        if view.captured_minor:
            lines.append(f"captured {view.amount.with_minor(view.captured_minor)}")
        if view.refunded_minor:
            lines.append(f"refunded {view.amount.with_minor(view.refunded_minor)}")
        if view.failure:
            lines.append(f"failure: `{view.failure.code}` {view.failure.message}")
        if view.next_action:
            lines.append(f"waiting for the customer: {view.next_action.type.value}")
        if view.disputes:
            lines.append("disputes: " + ", ".join(f"{d.dispute_id} ({d.status})" for d in view.disputes))
        return "\n\n".join(lines)

    # ------------------------------------------------------------ checks before the gateway

    def fraud_failure(self, fraud: FraudResult) -> Failure | None:
        """Keep the fraud result; a failure when it blocks the payment."""
        self.view.fraud = fraud
        if fraud.score <= self._input.settings.risk_threshold and fraud.decision is not FraudDecision.BLOCK:
            return None
        return Failure(
            code="blocked_by_fraud_check",
            message=f"risk score {fraud.score} is above the threshold: " + ", ".join(fraud.reasons),
        )

    def capture_now(self) -> bool:
        """Authorize and capture in one call? A gateway that cannot hold funds (wallets) captures on
        payment, whatever the delay."""
        inp = self._input
        return inp.capture_method is CaptureMethod.AUTOMATIC and (
            inp.settings.capture_delay_seconds == 0 or not inp.gateway.supports_manual_capture
        )

    def action_timeout(self) -> timedelta:
        """How long the customer has to act: the gateway's own time where it has one (a bank
        transfer's days), else the payment policy's."""
        inp = self._input
        return timedelta(seconds=inp.gateway.action_timeout_seconds or inp.settings.action_timeout_seconds)

    def request_three_ds(self) -> bool:
        threshold = self._input.settings.tds_threshold_minor
        return threshold is not None and self._input.amount.minor >= threshold

    def capture_amount_minor(self, request: CaptureRequest | None) -> int:
        """What to capture: what the merchant asked for, else all that was authorized."""
        if request and request.amount_minor:
            return request.amount_minor
        return self.authorized_minor or self._input.amount.minor

    # ------------------------------------------------------------ gateway results

    def apply_result(self, result: GatewayResult) -> list[Effect]:
        """Move the payment according to what the gateway said. Never backwards."""
        view = self.view
        if result.provider_payment_id:
            view.provider_payment_id = result.provider_payment_id
        if result.provider_response:
            view.provider_response = result.provider_response
        status = result.status
        if status is GatewayPaymentStatus.SUCCEEDED:
            return self.pay(result.captured_minor or result.authorized_minor or self._input.amount.minor)
        if status is GatewayPaymentStatus.AUTHORIZED:
            if view.status in OPEN:
                self.authorized_minor = result.authorized_minor or self._input.amount.minor
                view.next_action = None
                return [Record(PaymentStatus.AUTHORIZED, ("payment.authorized",))]
        elif status in (GatewayPaymentStatus.REQUIRES_ACTION, GatewayPaymentStatus.PROCESSING):
            if view.status in OPEN:
                if result.next_action:
                    view.next_action = result.next_action
                if view.status is not PaymentStatus.AUTHORIZING:
                    return [Record(PaymentStatus.AUTHORIZING, ("payment.requires_action",))]
        elif status in (
            GatewayPaymentStatus.DECLINED,
            GatewayPaymentStatus.CANCELLED,
            GatewayPaymentStatus.NOT_FOUND,
        ):
            if view.status in OPEN or view.status is PaymentStatus.AUTHORIZED:
                failure = result.failure or failure_for(status)
                final = (
                    PaymentStatus.CANCELLED
                    if status is GatewayPaymentStatus.CANCELLED
                    else PaymentStatus.FAILED
                )
                view.next_action = None
                return [Finish(final, failure, f"payment.{final.value}", release_order=True)]
        return []

    def pay(self, captured_minor: int) -> list[Effect]:
        """The money moved."""
        view = self.view
        if view.status in SETTLED:
            return []
        if view.status in FINAL_FAILURE_STATUSES:
            # Money arrived after we gave up on the payment and released the order: give it back.
            # The payment keeps its status; the refund is on its record.
            view.captured_minor = captured_minor
            return [Record(None, ("payment.late_success",)), RefundLatePayment()]
        view.captured_minor = captured_minor
        view.next_action = None
        view.failure = None
        return [ConfirmPaid()]

    def paid(self) -> None:
        """Recorded paid: refund notifications that arrived before go first in the queue now."""
        self.inbox[:0], self.held_refund_events = self.held_refund_events, []

    def apply_void_result(
        self, result: GatewayResult, was_authorized: bool, failure: Failure
    ) -> list[Effect]:
        """After a void: cancelled, unless the gateway says the payment went through meanwhile."""
        too_late = {GatewayPaymentStatus.SUCCEEDED}
        if not was_authorized:
            too_late.add(GatewayPaymentStatus.AUTHORIZED)  # the customer finished just in time
        if result.status in too_late:
            return self.apply_result(result)
        self.view.next_action = None
        return [Finish(PaymentStatus.CANCELLED, failure, "payment.cancelled", release_order=True)]

    # ------------------------------------------------------------ webhook events

    def receive(self, event: GatewayEvent) -> bool:
        """Queue a verified event. Providers deliver at least once: each event id is taken once."""
        if event.event_id in self._seen_event_ids:
            return False
        self._seen_event_ids[event.event_id] = None
        self.inbox.append(event)
        return True

    def apply_event(self, event: GatewayEvent) -> list[Effect]:
        kind = event.kind
        view = self.view
        if event.provider_payment_id and not view.provider_payment_id:
            view.provider_payment_id = event.provider_payment_id
        if kind in (GatewayEventKind.PAYMENT_SUCCEEDED, GatewayEventKind.PAYMENT_AUTHORIZED):
            if view.status in SETTLED:
                return []  # already paid: a late or repeated confirmation changes nothing
            if event.amount is not None and event.amount != self._input.amount:
                # A provider that reports another amount than we asked for is not a payment we
                # can accept as is: record it and let the status lookup tell what really moved.
                # A rare finding about the delivery, not a step of the payment: the record of the
                # delivery and the finding stay one transition each.
                data = {"event_id": event.event_id, "amount": str(event.amount)}
                return [Record(None, ("webhook.amount_mismatch",), data, alone=True)]
            if kind is GatewayEventKind.PAYMENT_SUCCEEDED:
                return self.pay(event.amount.minor if event.amount else self._input.amount.minor)
            return self.apply_result(GatewayResult(status=GatewayPaymentStatus.AUTHORIZED))
        if kind is GatewayEventKind.PAYMENT_FAILED:
            # Only a payment still in progress can fail; a failure after success is stale.
            if view.status in OPEN:
                return self.apply_result(
                    GatewayResult(status=GatewayPaymentStatus.DECLINED, failure=event.failure)
                )
        elif kind is GatewayEventKind.PAYMENT_CANCELLED:
            return self.apply_result(GatewayResult(status=GatewayPaymentStatus.CANCELLED))
        elif kind in (GatewayEventKind.REFUND_SUCCEEDED, GatewayEventKind.REFUND_FAILED):
            return self._apply_refund_event(event)
        elif kind is GatewayEventKind.DISPUTE_OPENED or kind is GatewayEventKind.DISPUTE_CLOSED:
            dispute_id = self._apply_dispute(event)
            settled = self.settled_status() if view.status in SETTLED else None
            # Named on the record: the merchant's dispute event says which dispute moved.
            data = {"dispute_id": dispute_id}
            return [Record(settled, (f"dispute.{event.dispute_status or kind.value}",), data)]
        return []

    def _apply_refund_event(self, event: GatewayEvent) -> list[Effect]:
        status = (
            RefundStatus.SUCCEEDED if event.kind is GatewayEventKind.REFUND_SUCCEEDED else RefundStatus.FAILED
        )
        refund = self.find_refund(event.refund_id, event.provider_refund_id)
        if refund is None:
            if (
                status is RefundStatus.FAILED
                or event.amount is None
                or (event.refund_id is None and event.provider_refund_id is None)
            ):
                return []
            if self.view.status not in SETTLED and self.view.status not in FINAL_FAILURE_STATUSES:
                if self._patched(HOLD_REFUND_EVENTS_UNTIL_PAID.id):
                    # Delivery order is not guaranteed: a refund can be notified before the
                    # payment's success. Hold it until the payment settles instead of dropping it.
                    self.held_refund_events.append(event)
                    return [Record(None, ("refund.held_until_paid",), {"event_id": event.event_id})]
            # A refund made outside durapay (e.g. in the provider's dashboard): record it, bounded
            # by what is left to refund so a replayed event can never over-count.
            if event.amount.minor > self.view.captured_minor - self.reserved_refunds():
                return [Record(None, ("refund.unexpected_amount",), {"event_id": event.event_id})]
            refund = RefundView(
                refund_id=event.refund_id or f"ext_{event.provider_refund_id}",
                amount=event.amount,
                status=RefundStatus.PENDING,
                provider_refund_id=event.provider_refund_id,
                reason="made at the provider",
                created_at=self._clock(),
            )
            self.view.refunds.append(refund)
        return self.settle_refund(refund.refund_id, status, event.provider_refund_id, event.failure)

    def _apply_dispute(self, event: GatewayEvent) -> str:
        """Open or move the event's dispute; its id."""
        dispute_id = event.dispute_id or event.event_id
        status = event.dispute_status or (
            "needs_response" if event.kind is GatewayEventKind.DISPUTE_OPENED else "closed"
        )
        for dispute in self.view.disputes:
            if dispute.dispute_id == dispute_id:
                dispute.status = status
                return dispute_id
        self.view.disputes.append(
            DisputeView(
                dispute_id=dispute_id, status=status, amount=event.amount, reason=event.dispute_reason
            )
        )
        return dispute_id

    # ------------------------------------------------------------ refunds

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

    # ------------------------------------------------------------ bank transfers and review

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
        if view.status in OPEN and receipt.amount == expected:
            return [Record(None, ("bank_transfer.received",), data), *self.pay(expected.minor)]
        if view.status in OPEN:
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

    # ------------------------------------------------------------ requests (update validators)

    def decide_refusal(self, request: DecisionRequest) -> Refusal | None:
        # A reopened payment's input has no fingerprint (the store does not keep it): it answers
        # with the payment as it stands, as the API does for a replay once the workflow closed.
        if self._input.request_fingerprint and request.request_fingerprint != self._input.request_fingerprint:
            return Refusal(
                Rejection.IDEMPOTENCY_KEY_REUSED,
                "this Idempotency-Key was already used for a different request",
            )
        return None

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

    def capture_refusal(self, request: CaptureRequest, *, capture_requested: bool) -> Refusal | None:
        inp = self._input
        if inp.capture_method is not CaptureMethod.MANUAL:
            return Refusal(Rejection.INVALID_STATE, "this payment captures automatically")
        if self.view.status is not PaymentStatus.AUTHORIZED or capture_requested:
            return Refusal(Rejection.INVALID_STATE, f"a {self.view.status.value} payment cannot be captured")
        authorized = self.authorized_minor or inp.amount.minor
        if request.amount_minor is not None:
            if request.amount_minor > authorized:
                return Refusal(
                    Rejection.AMOUNT_EXCEEDS, f"at most {inp.amount.with_minor(authorized)} can be captured"
                )
            if request.amount_minor < authorized and not inp.gateway.supports_partial_capture:
                return Refusal(Rejection.NOT_SUPPORTED, f"{inp.gateway.name} does not capture partially")
        return None

    def capture_answered(self) -> bool:
        """A capture request has its answer. OUTCOME_UNKNOWN is a step of the capture, not its outcome."""
        return self.view.status not in (PaymentStatus.AUTHORIZED, PaymentStatus.OUTCOME_UNKNOWN)

    def cancel_refusal(self, request: CancelRequest) -> Refusal | None:
        if self.view.status not in CANCELLABLE:
            return Refusal(
                Rejection.INVALID_STATE,
                f"a {self.view.status.value} payment cannot be cancelled; refund it instead",
            )
        return None

    def cancel_answered(self) -> bool:
        """A cancel request has its answer. OUTCOME_UNKNOWN is a step (of the void, or of the
        authorization it raced), not an outcome."""
        return self.view.status not in (*CANCELLABLE, PaymentStatus.OUTCOME_UNKNOWN)

    def refund_refusal(self, request: RefundRequest) -> Refusal | None:
        if self.find_refund(request.refund_id, None) is not None:
            return None  # a replay of the same refund request: answered with the refund as it is
        if self.view.status not in SETTLED:
            return Refusal(Rejection.INVALID_STATE, f"a {self.view.status.value} payment cannot be refunded")
        left = self.view.captured_minor - self.reserved_refunds()
        if left <= 0:
            return Refusal(Rejection.AMOUNT_EXCEEDS, "the payment is already fully refunded")
        if request.amount_minor is not None and request.amount_minor > left:
            return Refusal(
                Rejection.AMOUNT_EXCEEDS, f"at most {self._input.amount.with_minor(left)} is left to refund"
            )
        return None


# ---------------------------------------------------------------- failures


def refused_failure(error_type: str | None, message: str) -> Failure:
    """The failure of a request the provider refused (a non-retryable activity error): proof
    that nothing happened. `GatewayInvalidRequest` -> code `gateway_invalid_request`."""
    out = []
    for i, ch in enumerate(error_type or "GatewayError"):
        if ch.isupper() and i:
            out.append("_")
        out.append(ch.lower())
    return Failure(code="".join(out), message=message)


def failure_for(status: GatewayPaymentStatus) -> Failure:
    if status is GatewayPaymentStatus.NOT_FOUND:
        return Failure(
            code="not_processed", message="the gateway has no record of this payment: nothing was charged"
        )
    if status is GatewayPaymentStatus.CANCELLED:
        return Failure(code="cancelled", message="the payment was cancelled at the gateway")
    return Failure(code="declined", message="the gateway declined the payment")
