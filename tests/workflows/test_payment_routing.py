"""Routing in the workflow, with the real gateway activities (two mock gateways: `mock` and
`backup`), the real routing local activity and circuits fed by the calls' outcomes, on the dev
server; store, orders and fraud faked.

A 5xx burst on `mock` opens its circuit and new payments go to `backup`; after the open period a
probe that succeeds closes it and payments return; a request naming its gateway is never rerouted.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from temporalio.service import RPCError
from temporalio.worker import Worker

from activities.gateway_activities import GatewayActivities
from activities.gateways.mock.adapter import MockGateway
from activities.gateways.mock.settings import MockSettings
from activities.gateways.registry import GatewayRegistry
from activities.metrics import GatewayMetrics
from activities.routing.activity import RoutingActivities
from activities.routing.health import CircuitSettings, CircuitState, GatewayHealth
from activities.routing.rules import RoutingSettings
from tests.workflows.builders import payment_input, start_and_decide
from tests.workflows.fake_activities import FakeWorld
from workflows import activity_names as act
from workflows.domain import CardMethod, GatewayProfile, PaymentStatus, RoutingRequest
from workflows.payment import PaymentWorkflow

# Real here: the gateway calls and routing.
REAL = {act.AUTHORIZE, act.CAPTURE, act.CANCEL, act.LOOKUP, act.REFUND, act.LOOKUP_REFUND, act.ROUTE_PAYMENT}


class BackupMock(MockGateway):
    """A second, independent mock under another id."""

    @property
    def profile(self) -> GatewayProfile:
        return super().profile.model_copy(update={"id": "backup", "name": "Backup"})


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def routed(temporal_env, task_queue):
    clock = Clock()
    health = GatewayHealth(
        CircuitSettings(window_calls=10, min_calls=4, failure_ratio=0.5, open_seconds=30), clock
    )
    registry = GatewayRegistry(
        [MockGateway(MockSettings(enabled=True)), BackupMock(MockSettings(enabled=True))]
    )
    settings = RoutingSettings.model_validate(
        {"rules": [{"currencies": ["USD"], "gateways": ["mock", "backup"]}]}
    )
    world = FakeWorld()
    faked = [a for a in world.activities() if a.__temporal_activity_definition.name not in REAL]  # type: ignore[attr-defined]
    handles = []

    async def pay(payment_id: str, token: str = "tok_visa", *, named: bool = False):
        inp = payment_input(
            payment_id,
            gateway=registry.get("mock").profile,
            method=CardMethod(token=token),
            routing=None if named else RoutingRequest(merchant="shop"),
        )
        view, handle = await start_and_decide(temporal_env.client, task_queue, inp)
        handles.append(handle)
        return view

    async with Worker(
        temporal_env.client,
        task_queue=task_queue,
        workflows=[PaymentWorkflow],
        activities=[
            *faked,
            *GatewayActivities(registry, GatewayMetrics(health=health)).definitions(),
            *RoutingActivities(settings, registry.profiles(), health).definitions(),
        ],
    ):
        yield pay, health, clock, world
        for handle in handles:
            with contextlib.suppress(RPCError):
                await handle.terminate()
    await registry.aclose()


async def test_a_5xx_burst_moves_new_payments_to_the_next_candidate_until_a_probe_succeeds(routed, unique):
    pay, health, clock, world = routed
    first = await pay(f"pay_a{unique}")
    assert (first.gateway, first.status) == ("mock", PaymentStatus.PAID)
    assert first.routing is not None and first.routing.reason == "rule 1: first candidate"

    # Two payments whose calls to mock fail three times each before they go through: retried
    # under the same idempotency key, paid in the end, and the circuit sees the burst.
    burst = await asyncio.gather(*(pay(f"pay_t{i}{unique}", "tok_transient_3") for i in range(2)))
    assert [v.status for v in burst] == [PaymentStatus.PAID, PaymentStatus.PAID]
    assert health.state("mock") is CircuitState.OPEN

    moved = await pay(f"pay_b{unique}")
    assert (moved.gateway, moved.status) == ("backup", PaymentStatus.PAID)
    assert moved.routing is not None and moved.routing.skipped == ["mock"]
    assert moved.routing.reason == "rule 1: circuit open for mock"
    routed_events = [
        e for t in world.transitions if t.view.id == moved.id for e in t.events if e.type == "payment.routed"
    ]
    assert routed_events[0].data == {"gateway": "backup", "reason": "rule 1: circuit open for mock"}

    # Named: the merchant asked for mock, and gets it even with its circuit open.
    named = await pay(f"pay_n{unique}", named=True)
    assert (named.gateway, named.routing) == ("mock", None)

    clock.now += 31  # the open period is over: the next payment probes mock
    probe = await pay(f"pay_p{unique}")
    assert probe.gateway == "mock" and probe.status is PaymentStatus.PAID
    assert health.state("mock") is CircuitState.CLOSED
    back = await pay(f"pay_c{unique}")
    assert back.gateway == "mock"


async def test_a_declined_card_is_not_retried_on_another_gateway(routed, unique):
    pay, health, _, _ = routed
    declined = await pay(f"pay_d{unique}", "tok_chargeDeclined")
    assert (declined.gateway, declined.status) == ("mock", PaymentStatus.FAILED)
    assert health.state("mock") is CircuitState.CLOSED
