"""In-memory stand-ins for the activities, registered under the real names, so workflow tests
exercise the workflow's logic alone (the real activities have their own tests).

A script sets the gateway's answers; a gate (an `asyncio.Event` the test sets) holds an activity
open so a test can send messages while the call is in flight; `started` tells the test the call is
under way. Activities run in the test's own event loop, so plain asyncio primitives work."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.event_verification import EventVerification
from tests.workflows.builders import TEST_EVENT_KEYS
from workflows import activity_names as act
from workflows.domain import FraudDecision, FraudPolicy, FraudResult, GatewayProfile, RefundStatus
from workflows.fraud_io import FeedbackCall, ScreeningCall, ScreeningVerdict
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
from workflows.routing_io import RoutingCall, RoutingDecision


@dataclass
class Gate:
    """Holds an activity until the test opens it; `started` is set once the activity is waiting."""

    started: asyncio.Event = field(default_factory=asyncio.Event)
    open: asyncio.Event = field(default_factory=asyncio.Event)

    async def pass_through(self) -> None:
        self.started.set()
        await self.open.wait()


@dataclass
class FakeWorld:
    """What the fake gateway and ledger saw. Scripts decide the gateway's answers."""

    authorize_answer: GatewayResult = field(
        default_factory=lambda: GatewayResult(
            status=GatewayPaymentStatus.SUCCEEDED, provider_payment_id="pi_1"
        )
    )
    authorize_error: ApplicationError | None = None
    authorize_gate: Gate | None = None
    # Errors raised by capture calls with these idempotency keys; other keys capture the amount.
    capture_errors: dict[str, ApplicationError] = field(default_factory=dict)
    lookup_answers: list[GatewayResult] = field(default_factory=list)
    cancel_answer: GatewayResult = field(
        default_factory=lambda: GatewayResult(status=GatewayPaymentStatus.CANCELLED)
    )
    cancel_error: ApplicationError | None = None
    refund_error: ApplicationError | None = None
    refund_gate: Gate | None = None
    lookup_refund_answers: list[RefundResult] = field(default_factory=list)
    fraud_score: int = 5
    # The rules' decision (default: block above 75, else allow) and the policy they hand on.
    fraud_decision: FraudDecision | None = None
    fraud_policy: FraudPolicy | None = None
    fraud_policies: dict[str, FraudPolicy] = field(default_factory=dict)  # by payment id, over the above
    # The screening service's answer; an error instead makes the activity fail (non-retryable).
    screen_verdict: ScreeningVerdict = field(
        default_factory=lambda: ScreeningVerdict(decision=FraudDecision.ALLOW, score=10, reference="ref_1")
    )
    screen_error: ApplicationError | None = None
    # What routing chooses; None: keeps the API's gateway.
    routed_to: GatewayProfile | None = None
    reservation: ReservationResult = field(default_factory=lambda: ReservationResult(accepted=True))
    calls: dict[str, list] = field(default_factory=lambda: defaultdict(list))
    transitions: list[PaymentTransition] = field(default_factory=list)

    def events(self) -> list[str]:
        """Every store event type the workflow recorded, in order."""
        return [e.type for t in self.transitions for e in t.events]

    def activities(self) -> list:
        world = self

        @activity.defn(name=act.AUTHORIZE)
        async def authorize(call: AuthorizeCall) -> GatewayResult:
            world.calls["authorize"].append(call)
            if world.authorize_gate:
                await world.authorize_gate.pass_through()
            if world.authorize_error:
                raise world.authorize_error
            return world.authorize_answer

        @activity.defn(name=act.CAPTURE)
        async def capture(call: CaptureCall) -> GatewayResult:
            world.calls["capture"].append(call)
            if call.idempotency_key in world.capture_errors:
                raise world.capture_errors[call.idempotency_key]
            return GatewayResult(status=GatewayPaymentStatus.SUCCEEDED, captured_minor=call.amount.minor)

        @activity.defn(name=act.CANCEL)
        async def cancel(call: CancelCall) -> GatewayResult:
            world.calls["cancel"].append(call)
            if world.cancel_error:
                raise world.cancel_error
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
            if world.refund_gate:
                await world.refund_gate.pass_through()
            if world.refund_error:
                raise world.refund_error
            return RefundResult(
                refund_id=call.refund_id,
                status=RefundStatus.SUCCEEDED,
                provider_refund_id=f"re_{call.refund_id}",
            )

        @activity.defn(name=act.LOOKUP_REFUND)
        async def lookup_refund(call: RefundLookupCall) -> RefundResult:
            world.calls["lookup_refund"].append(call)
            if world.lookup_refund_answers:
                return world.lookup_refund_answers.pop(0)
            return RefundResult(
                refund_id=call.refund_id,
                status=RefundStatus.SUCCEEDED,
                provider_refund_id=f"re_{call.refund_id}",
            )

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
            decision = world.fraud_decision or (
                FraudDecision.BLOCK if world.fraud_score > 75 else FraudDecision.ALLOW
            )
            return FraudResult(
                score=world.fraud_score,
                decision=decision,
                reasons=["scripted"],
                policy=world.fraud_policies.get(r.payment_id, world.fraud_policy),
            )

        @activity.defn(name=act.SCREEN_FRAUD)
        async def screen(call: ScreeningCall) -> ScreeningVerdict:
            world.calls["screen"].append(call)
            if world.screen_error:
                raise world.screen_error
            return world.screen_verdict

        @activity.defn(name=act.ROUTE_PAYMENT)
        async def route(call: RoutingCall) -> RoutingDecision:
            world.calls["route"].append(call)
            if world.routed_to is None:
                return RoutingDecision(gateway=call.default, reason="no rule matched: default gateway")
            return RoutingDecision(
                gateway=world.routed_to, reason="rule 1: circuit open for fake", skipped=["fake"]
            )

        @activity.defn(name=act.FRAUD_FEEDBACK)
        async def feedback(call: FeedbackCall) -> bool:
            world.calls["feedback"].append(call)
            return True

        @activity.defn(name=act.RECORD_TRANSITION)
        async def record(t: PaymentTransition) -> None:
            world.transitions.append(t)

        return [
            *EventVerification(TEST_EVENT_KEYS).definitions(),
            authorize,
            capture,
            cancel,
            lookup,
            refund,
            lookup_refund,
            reserve,
            release,
            confirm,
            fraud,
            screen,
            feedback,
            route,
            record,
        ]
