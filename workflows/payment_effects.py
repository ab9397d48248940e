"""What PaymentState hands PaymentWorkflow: the *effects* it must carry out, in order, and the
*refusal* an update is rejected with. Pure data, no temporalio (the state's modules import it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from workflows.domain import Failure, PaymentStatus
from workflows.fraud_io import FeedbackCall
from workflows.messages import RefundRequest
from workflows.rejections import Rejection


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


@dataclass(frozen=True)
class SendFraudFeedback:
    """Tell the screening service what became of the payment; nothing waits for it."""

    call: FeedbackCall


Effect = Record | Finish | ConfirmPaid | RefundLatePayment | SendFraudFeedback


class Refusal(NamedTuple):
    """Why a request is refused: the workflow rejects the update with it."""

    rejection: Rejection
    message: str
