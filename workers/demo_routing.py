"""The demo's routing flow: a payment routed around a failing gateway.

`[payment.routing]` sends the demo's EUR card payments to Stripe first, then the mock. The flow makes
Stripe's fake answer 503 long enough for the worker's Stripe circuit (activities/routing/health.py,
default thresholds) to open, then sends a payment naming no gateway: routing passes Stripe over and
the mock takes it. The routing rule only exists while Stripe's fake runs (`durapay dev` without
`--no-fake-providers`, Stripe not configured by the user): a rule naming a gateway that is not
enabled stops the worker, and a real Stripe account must never be made to fail.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from activities.gateways.demo_flow import DemoError, DemoFlow, DemoSteps, Payment, card, summary
from activities.gateways.mock import GATEWAY_ID as MOCK
from activities.gateways.stripe import GATEWAY_ID as STRIPE
from activities.gateways.stripe.fake import FakeStripe
from workers.config import DurapayConfig
from workers.fake_providers.local import FakeProviders

# No other demo flow pays in EUR, so the rule routes this flow's payments only.
DEMO_ROUTING_CURRENCY = "EUR"
# Payments sent into the outage at once, and the 503s the fake answers in all: two per payment,
# which makes the ten calls the circuit needs (CircuitSettings.min_calls) all transient.
OUTAGE_PAYMENTS = 5
OUTAGE_FAILURES = 10


def routing_defaults() -> dict[str, Any]:
    return {
        "payment": {
            "routing": {"rules": [{"currencies": [DEMO_ROUTING_CURRENCY], "gateways": [STRIPE, MOCK]}]}
        }
    }


def with_demo_routing(config: DurapayConfig, fakes: FakeProviders | None) -> DurapayConfig:
    """`config` with the demo's routing rule when Stripe's fake runs and the user set no routing."""
    if fakes is None or STRIPE not in fakes.running or config.payment.routing:
        return config
    payment = config.payment.model_copy(update={"routing": routing_defaults()["payment"]["routing"]})
    return config.model_copy(update={"payment": payment})


async def routed_around_a_failing_gateway(steps: DemoSteps, stripe: FakeStripe) -> Payment:
    def pay(flow: str) -> Awaitable[Payment]:
        return steps.create(flow, "21.00", card("pm_card_visa"), currency=DEMO_ROUTING_CURRENCY)

    stripe.fail_next(OUTAGE_FAILURES, status=503)
    outage = await asyncio.gather(*(pay(f"routing-outage-{i}") for i in range(OUTAGE_PAYMENTS)))
    # Routed to Stripe before its circuit opened, retried under their idempotency keys, they get
    # through once the 503s are used up: then the fake answers normally again.
    for payment in outage:
        settled = await steps.settled(payment["id"])
        if settled["status"] != "paid" or settled["gateway"] != STRIPE:
            raise DemoError(f"expected an outage payment paid at {STRIPE}, got {summary(settled)}")
    return await steps.settled((await pay("routing-around"))["id"])


def routing_flows(fakes: FakeProviders | None) -> list[tuple[DemoFlow, Any]]:
    """The flow with the fake it makes fail; none without Stripe's fake."""
    if fakes is None or STRIPE not in fakes.running:
        return []
    return [(FLOW, fakes.running[STRIPE])]


FLOW = DemoFlow(
    "routed around a failing gateway",
    f"paid captured 21.00 via {MOCK} (routed: {STRIPE} circuit open)",
    routed_around_a_failing_gateway,
)
