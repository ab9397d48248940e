"""A payment's decisions, apart from Temporal: what a gateway result, a webhook event or a refund
outcome does to the payment, and which requests its state allows.

`PaymentState` holds the view and the bookkeeping around it. Its methods change the state at once
and return the *effects* (workflows/payment_effects.py) the workflow must then carry out, in order
(record a transition, finish the payment, confirm the order, refund money that came too late); the
workflow (workflows/payment.py) owns every wait, activity and message. Nothing here imports
temporalio: the clock and the patch check are handed in, so the rules are unit-tested without a
server (tests/workflows/test_payment_state.py).

Rules kept here:
- Never backwards: a late or repeated result or event does not undo a settled or failed payment.
- Webhook events are applied at most once (by provider event id); a refund is counted once.
- Money that arrives after the payment was given up is refunded, not kept.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from workflows.domain import (
    FINAL_FAILURE_STATUSES,
    OPEN_STATUSES,
    CaptureMethod,
    DisputeView,
    Failure,
    FraudDecision,
    PaymentInput,
    PaymentResume,
    PaymentStatus,
    PaymentView,
    RefundStatus,
    RefundView,
    RoutingView,
)
from workflows.fraud_io import FeedbackKind
from workflows.gateway_io import (
    GatewayEvent,
    GatewayEventKind,
    GatewayPaymentStatus,
    GatewayResult,
)
from workflows.messages import (
    BankTransferReceipt,
    CancelRequest,
    CaptureRequest,
    DecisionRequest,
    RefundRequest,
)
from workflows.patches import HOLD_REFUND_EVENTS_UNTIL_PAID
from workflows.payment_bank_transfer_state import BankTransferState
from workflows.payment_effects import (
    ConfirmPaid,
    Effect,
    Finish,
    Record,
    RefundLatePayment,
    Refusal,
)
from workflows.payment_refund_state import SETTLED, RefundState
from workflows.payment_resume import SEEN_EVENT_IDS_KEPT
from workflows.payment_review_state import ReviewState
from workflows.rejections import Rejection
from workflows.routing_io import RoutingDecision

# Statuses in which the payment is waiting on the customer or the provider.
CANCELLABLE = (
    PaymentStatus.PENDING,
    PaymentStatus.AUTHORIZING,
    PaymentStatus.AUTHORIZED,
    PaymentStatus.REQUIRES_REVIEW,
)
# What a capture (or the lookup after one with an unknown outcome) may answer while the money is
# still only held: the capture has not happened, or not yet.
NOT_CAPTURED_YET = (
    GatewayPaymentStatus.AUTHORIZED,
    GatewayPaymentStatus.PROCESSING,
    GatewayPaymentStatus.REQUIRES_ACTION,
)
PAID_EVENTS = ("payment.captured", "order.paid", "payment.completed")
# Events that change nothing whoever sent them: applied without a proof.
INERT_EVENTS = (
    GatewayEventKind.UNKNOWN,
    GatewayEventKind.PAYMENT_REQUIRES_ACTION,
    GatewayEventKind.PAYMENT_PROCESSING,
)
PAYMENT_EVENTS = (
    GatewayEventKind.PAYMENT_SUCCEEDED,
    GatewayEventKind.PAYMENT_AUTHORIZED,
    GatewayEventKind.PAYMENT_FAILED,
    GatewayEventKind.PAYMENT_CANCELLED,
)


# ---------------------------------------------------------------- the state


class PaymentState(RefundState, ReviewState, BankTransferState):
    """The payment's state and rules. The refund arithmetic (workflows/payment_refund_state.py) and
    the fraud and review rules (workflows/payment_review_state.py) are mixed in from their modules."""

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
        # Held for review after authorization: authorize only, whatever the capture settings.
        self.authorize_for_review = False
        # Bank transfers received, by the bank's reference: each is taken once.
        self.receipts: dict[str, BankTransferReceipt] = {}

    @property
    def status(self) -> PaymentStatus:
        return self.view.status

    # ------------------------------------------------------------ routing

    def route(self, decision: RoutingDecision) -> PaymentInput:
        """Take the gateway routing chose (before anything happened); the input from now on."""
        self._input = self._input.model_copy(update={"gateway": decision.gateway})
        self.view.gateway = decision.gateway.id
        self.view.routing = RoutingView(
            gateway=decision.gateway.id, reason=decision.reason, skipped=decision.skipped
        )
        return self._input

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
        if view.routing:
            lines.append(f"routed to {view.routing.gateway}: {view.routing.reason}")
        if view.failure:
            lines.append(f"failure: `{view.failure.code}` {view.failure.message}")
        if view.next_action:
            lines.append(f"waiting for the customer: {view.next_action.type.value}")
        if view.disputes:
            lines.append("disputes: " + ", ".join(f"{d.dispute_id} ({d.status})" for d in view.disputes))
        if view.fraud and (view.fraud.decision is not FraudDecision.ALLOW or view.fraud.source != "rules"):
            reasons = ", ".join(view.fraud.reasons) or "no reasons given"
            lines.append(
                f"fraud: {view.fraud.decision.value} by {view.fraud.source}, score {view.fraud.score} ({reasons})"
            )
        review = view.review
        if review and review.decision is None:
            lines.append(
                f"held for review until {review.deadline:%Y-%m-%d %H:%M} UTC: "
                "decide with the `review` update (approve / reject) or POST /v1/payments/{id}/review"
            )
        elif review:
            lines.append(f"review: {review.decision.value if review.decision else ''} by {review.decided_by}")
        return "\n\n".join(lines)

    # ------------------------------------------------------------ checks before the gateway

    def capture_now(self) -> bool:
        """Authorize and capture in one call? A gateway that cannot hold funds (wallets) captures on
        payment, whatever the delay; a payment held for review is only authorized."""
        inp = self._input
        return (
            not self.authorize_for_review
            and inp.capture_method is CaptureMethod.AUTOMATIC
            and (inp.settings.capture_delay_seconds == 0 or not inp.gateway.supports_manual_capture)
        )

    def action_timeout(self) -> timedelta:
        """How long the customer has to act: the gateway's own time where it has one (a bank
        transfer's days), else the payment policy's."""
        inp = self._input
        return timedelta(seconds=inp.gateway.action_timeout_seconds or inp.settings.action_timeout_seconds)

    def action_notified(self) -> bool:
        """Whether the gateway tells the outcome of the action the customer was given without being
        asked (`GatewayProfile.notified_actions`): then the wait for it is not polled."""
        action = self.view.next_action
        return action is not None and action.type in self._input.gateway.notified_actions

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
            if view.status in OPEN_STATUSES:
                self.authorized_minor = result.authorized_minor or self._input.amount.minor
                view.next_action = None
                if self.authorize_for_review:
                    # Straight into review: the caller waiting for a decision must not read
                    # "authorized" as a payment cleared to ship.
                    return self.begin_review(("payment.authorized",))
                return [Record(PaymentStatus.AUTHORIZED, ("payment.authorized",))]
        elif status in (GatewayPaymentStatus.REQUIRES_ACTION, GatewayPaymentStatus.PROCESSING):
            if view.status in OPEN_STATUSES:
                if result.next_action:
                    view.next_action = result.next_action
                if view.status is not PaymentStatus.AUTHORIZING:
                    return [Record(PaymentStatus.AUTHORIZING, ("payment.requires_action",))]
        elif status in (
            GatewayPaymentStatus.DECLINED,
            GatewayPaymentStatus.CANCELLED,
            GatewayPaymentStatus.NOT_FOUND,
        ):
            if view.status in OPEN_STATUSES or view.status is PaymentStatus.AUTHORIZED:
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
        return [ConfirmPaid(), *self.fraud_feedback(FeedbackKind.CAPTURED)]

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
        """Queue an event. Providers deliver at least once: each event is taken once. "Each event"
        is its id and its proof: an unproven event sent first under a genuine event's id (a guess,
        or read from the provider's dashboard) must not shadow the genuine one."""
        # An unproven event is known by its id (as before proofs existed), a proven one by its id
        # and its MAC.
        key = event.event_id if event.proof is None else f"{event.event_id}\x00{event.proof.mac}"
        if key in self._seen_event_ids:
            return False
        self._seen_event_ids[key] = None
        self.inbox.append(event)
        return True

    def event_refusal(self, event: GatewayEvent) -> str | None:
        """Why `event` cannot be this payment's at all, proof or not: another gateway's, or one
        naming another payment."""
        if event.gateway != self._input.gateway.id:
            return "another_gateway"
        if event.payment_id is not None and event.payment_id != self._input.payment_id:
            return "another_payment"
        return None

    def refund_to_confirm(self, event: GatewayEvent) -> RefundView | None:
        """The unresolved refund an unproven refund event names: the gateway is asked about it."""
        refund = self.find_refund(event.refund_id, event.provider_refund_id)
        return refund if refund is not None and refund in self.unresolved_refunds() else None

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
            if view.status in OPEN_STATUSES:
                return self.apply_result(
                    GatewayResult(status=GatewayPaymentStatus.DECLINED, failure=event.failure)
                )
        elif kind is GatewayEventKind.PAYMENT_CANCELLED:
            return self.apply_result(GatewayResult(status=GatewayPaymentStatus.CANCELLED))
        elif kind in (GatewayEventKind.REFUND_SUCCEEDED, GatewayEventKind.REFUND_FAILED):
            return self._apply_refund_event(event)
        elif kind is GatewayEventKind.DISPUTE_OPENED or kind is GatewayEventKind.DISPUTE_CLOSED:
            new = not any(d.dispute_id == (event.dispute_id or event.event_id) for d in view.disputes)
            dispute_id = self._apply_dispute(event)
            settled = self.settled_status() if view.status in SETTLED else None
            # Named on the record: the merchant's dispute event says which dispute moved.
            data = {"dispute_id": dispute_id}
            record: list[Effect] = [Record(settled, (f"dispute.{event.dispute_status or kind.value}",), data)]
            if new and kind is GatewayEventKind.DISPUTE_OPENED:
                return [*record, *self.fraud_feedback(FeedbackKind.DISPUTED, event)]
            return record
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
