"""In-memory stand-ins for the activities, registered under the real names, so workflow tests
exercise the workflow's logic alone (the real activities have their own tests)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from temporalio import activity
from temporalio.exceptions import ApplicationError

from workflows import activity_names as act
from workflows.domain import FraudDecision, FraudResult, RefundStatus
from workflows.gateway_io import (
    AuthorizeCall,
    CancelCall,
    CaptureCall,
    GatewayPaymentStatus,
    GatewayResult,
    LookupCall,
    RefundCall,
    RefundLookupCall,
    RefundResult,
)
from workflows.ledger_io import (
    FraudCheckRequest,
    OrderRelease,
    OrderReservation,
    PaymentTransition,
    ReservationResult,
)


@dataclass
class FakeWorld:
    """What the fake gateway and ledger saw. Scripts decide the gateway's answers."""

    authorize_answer: GatewayResult = field(
        default_factory=lambda: GatewayResult(status=GatewayPaymentStatus.SUCCEEDED, provider_payment_id="pi_1")
    )
    lookup_answers: list[GatewayResult] = field(default_factory=list)
    cancel_answer: GatewayResult = field(
        default_factory=lambda: GatewayResult(status=GatewayPaymentStatus.CANCELLED)
    )
    authorize_error: ApplicationError | None = None
    fraud_score: int = 5
    reservation: ReservationResult = field(default_factory=lambda: ReservationResult(accepted=True))
    calls: dict[str, list] = field(default_factory=lambda: defaultdict(list))
    transitions: list[PaymentTransition] = field(default_factory=list)

    def activities(self) -> list:
        world = self

        @activity.defn(name=act.AUTHORIZE)
        async def authorize(call: AuthorizeCall) -> GatewayResult:
            world.calls["authorize"].append(call)
            if world.authorize_error:
                raise world.authorize_error
            return world.authorize_answer

        @activity.defn(name=act.CAPTURE)
        async def capture(call: CaptureCall) -> GatewayResult:
            world.calls["capture"].append(call)
            return GatewayResult(status=GatewayPaymentStatus.SUCCEEDED, captured_minor=call.amount.minor)

        @activity.defn(name=act.CANCEL)
        async def cancel(call: CancelCall) -> GatewayResult:
            world.calls["cancel"].append(call)
            return world.cancel_answer

        @activity.defn(name=act.LOOKUP)
        async def lookup(call: LookupCall) -> GatewayResult:
            world.calls["lookup"].append(call)
            if world.lookup_answers:
                return world.lookup_answers.pop(0)
            return GatewayResult(status=GatewayPaymentStatus.REQUIRES_ACTION)

        @activity.defn(name=act.REFUND)
        async def refund(call: RefundCall) -> RefundResult:
            world.calls["refund"].append(call)
            return RefundResult(refund_id=call.refund_id, status=RefundStatus.SUCCEEDED, provider_refund_id=f"re_{call.refund_id}")

        @activity.defn(name=act.LOOKUP_REFUND)
        async def lookup_refund(call: RefundLookupCall) -> RefundResult:
            world.calls["lookup_refund"].append(call)
            return RefundResult(refund_id=call.refund_id, status=RefundStatus.SUCCEEDED)

        @activity.defn(name=act.RESERVE_ORDER)
        async def reserve(r: OrderReservation) -> ReservationResult:
            world.calls["reserve"].append(r)
            return world.reservation

        @activity.defn(name=act.RELEASE_ORDER)
        async def release(r: OrderRelease) -> None:
            world.calls["release"].append(r)

        @activity.defn(name=act.CONFIRM_ORDER)
        async def confirm(r: OrderRelease) -> None:
            world.calls["confirm"].append(r)

        @activity.defn(name=act.CHECK_FRAUD)
        async def fraud(r: FraudCheckRequest) -> FraudResult:
            world.calls["fraud"].append(r)
            decision = FraudDecision.BLOCK if world.fraud_score > 75 else FraudDecision.ALLOW
            return FraudResult(score=world.fraud_score, decision=decision, reasons=["scripted"])

        @activity.defn(name=act.RECORD_TRANSITION)
        async def record(t: PaymentTransition) -> None:
            world.transitions.append(t)

        return [authorize, capture, cancel, lookup, refund, lookup_refund, reserve, release, confirm, fraud, record]
