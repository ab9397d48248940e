"""The payment workflow with a screening service: the real screening activities talking to each
service's fake over HTTP, the gateway and the store faked (tests/workflows/fake_activities.py).

Allow -> paid with feedback after capture; block -> failed before any gateway call; an outage -> the
policy's fallback (allow, review, block) after the short screening budget; feedback after a dispute.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.worker import Worker

from activities.fraud_providers.activities import FraudScreeningActivities
from activities.fraud_providers.fake_server import FakeServer
from tests.activities.fraud_providers.cases import PROVIDERS, build, new_fake
from tests.workflows.builders import gateway_event, payment_input, send_event, start_and_decide, wait_for
from tests.workflows.conftest import assert_versions_increase
from tests.workflows.fake_activities import FakeWorld
from workflows import activity_names as act
from workflows.domain import FraudDecision, FraudPolicy, PaymentStatus, ReviewDecisionKind
from workflows.gateway_io import GatewayEventKind, GatewayPaymentStatus, GatewayResult
from workflows.messages import ReviewDecision
from workflows.payment import PaymentWorkflow

pytestmark = pytest.mark.parametrize("name", PROVIDERS)
AUTHORIZED = GatewayResult(
    status=GatewayPaymentStatus.AUTHORIZED, provider_payment_id="pi_1", authorized_minor=4999
)


@dataclass
class Screened:
    client: Client
    task_queue: str
    fake: FakeServer
    world: FakeWorld

    def policy(self, name: str, on_error: FraudDecision = FraudDecision.REVIEW) -> FraudPolicy:
        return FraudPolicy(provider=name, on_provider_error=on_error)

    async def pay(self, payment_id: str, email: str, **overrides):
        inp = payment_input(payment_id, customer_email=email, customer_id="cus_1", **overrides)
        view, handle = await start_and_decide(self.client, self.task_queue, inp)
        self.handles.append(handle)
        return view, handle

    def __post_init__(self) -> None:
        self.handles: list = []


@pytest.fixture
async def screened(temporal_env, task_queue, name) -> AsyncIterator[Screened]:
    async with new_fake(name) as fake:
        provider = build(name, fake)
        world = FakeWorld(fraud_policy=FraudPolicy(provider=name))
        faked = [
            a
            for a in world.activities()
            if a.__temporal_activity_definition.name not in (act.SCREEN_FRAUD, act.FRAUD_FEEDBACK)
        ]  # type: ignore[attr-defined]
        run = Screened(temporal_env.client, task_queue, fake, world)
        async with Worker(
            temporal_env.client,
            task_queue=task_queue,
            workflows=[PaymentWorkflow],
            activities=[*faked, *FraudScreeningActivities({name: provider}).definitions()],
        ):
            try:
                yield run
            finally:
                for handle in run.handles:
                    with contextlib.suppress(RPCError):
                        await handle.terminate()
        await provider.aclose()
    assert_versions_increase(world)


def feedback_bodies(fake: FakeServer) -> list:
    return fake.received[1:]  # after the screening itself


async def test_allowed_payment_is_paid_and_the_service_hears_of_the_capture(screened, name, unique):
    view, _ = await screened.pay(f"pay_{unique}", "ann@example.com")
    assert view.status is PaymentStatus.PAID
    assert view.fraud is not None
    assert (view.fraud.source, view.fraud.decision) == (name, FraudDecision.ALLOW)
    assert view.fraud.reference
    assert len(screened.world.calls["authorize"]) == 1
    for _ in range(100):
        if feedback_bodies(screened.fake):
            break
        await asyncio.sleep(0.05)
    [sent] = feedback_bodies(screened.fake)
    assert "transactions" in sent.body or sent.body.get("$type") == "$transaction"


async def test_blocked_payment_fails_before_the_gateway(screened, name, unique):
    view, _ = await screened.pay(f"pay_{unique}", "block@example.com")
    assert view.status is PaymentStatus.FAILED
    assert view.failure is not None and view.failure.code == "blocked_by_fraud_check"
    assert view.fraud is not None and view.fraud.source == name
    assert screened.world.calls["authorize"] == []
    assert len(screened.world.calls["release"]) == 1  # the order is free for another payment


async def test_outage_falls_back_to_the_policy(screened, name, unique):
    screened.fake.down = True
    screened.world.authorize_answer = AUTHORIZED
    ids = {d: f"pay_{d.value}_{unique}" for d in FraudDecision}
    for decision, payment_id in ids.items():
        screened.world.fraud_policies[payment_id] = screened.policy(name, decision)
    (allowed, _), (reviewed, _), (blocked, _) = await asyncio.gather(
        *(screened.pay(ids[d], "ann@example.com") for d in FraudDecision)
    )
    assert reviewed.status is PaymentStatus.REQUIRES_REVIEW
    assert allowed.status is PaymentStatus.AUTHORIZED  # cleared: captured next
    assert allowed.fraud is not None and f"{name}_unavailable" in allowed.fraud.reasons
    assert allowed.fraud.source == "rules"  # the service never answered
    assert blocked.status is PaymentStatus.FAILED
    assert blocked.failure is not None and blocked.failure.code == "blocked_by_fraud_check"
    assert len(screened.world.calls["authorize"]) == 2  # allowed, and reviewed (authorized only)
    assert screened.fake.received == []


async def test_held_by_the_service_until_an_operator_approves(screened, name, unique):
    screened.world.authorize_answer = AUTHORIZED
    view, handle = await screened.pay(f"pay_{unique}", "review@example.com")
    assert view.status is PaymentStatus.REQUIRES_REVIEW
    assert view.fraud is not None and (view.fraud.source, view.fraud.decision) == (name, FraudDecision.REVIEW)
    view = await handle.execute_update(
        PaymentWorkflow.review, ReviewDecision(decision=ReviewDecisionKind.APPROVE, decided_by="ops")
    )
    assert view.status is PaymentStatus.PAID


async def test_the_service_hears_of_a_dispute(screened, name, unique):
    view, handle = await screened.pay(f"pay_{unique}", "ann@example.com")
    assert view.status is PaymentStatus.PAID
    await send_event(
        handle,
        gateway_event(
            "evt_d1", GatewayEventKind.DISPUTE_OPENED, dispute_id="dp_1", dispute_reason="fraudulent"
        ),
    )
    await wait_for(handle, lambda v: v.status is PaymentStatus.DISPUTED)
    expected = 2 if name != "kount" else 1  # capture, then the chargeback (Kount: capture only)
    for _ in range(100):
        if len(feedback_bodies(screened.fake)) >= expected:
            break
        await asyncio.sleep(0.05)
    sent = [r.body for r in feedback_bodies(screened.fake)]
    assert len(sent) == expected
    if name == "sift":
        assert sent[-1]["$type"] == "$chargeback" and sent[-1]["$chargeback_reason"] == "$fraud"
    elif name == "signifyd":
        assert sent[-1]["chargebackId"] == "dp_1"
