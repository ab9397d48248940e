"""Routing rules (pure) and the circuits that feed them, with a hand-driven clock."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from activities.metrics import GatewayMetrics, GatewayOutcome
from activities.routing.health import CircuitSettings, CircuitState, GatewayHealth
from activities.routing.rules import RoutingSettings, choose
from workers.config import ConfigError, load_config
from workers.worker import gateway_registry, routing_settings
from workflows.domain import CardMethod, GatewayProfile, WalletMethod
from workflows.money import Amount
from workflows.routing_io import RoutingCall

DEFAULT = GatewayProfile(id="mock", name="Mock", methods=["card"], currencies=["USD", "EUR"])
PROFILES = {
    "mock": DEFAULT,
    "stripe": GatewayProfile(id="stripe", name="Stripe", methods=["card"], currencies=["USD", "EUR", "GBP"]),
    "alipay": GatewayProfile(
        id="alipay", name="AliPay", methods=["wallet:alipay"], currencies=["CNY", "USD"]
    ),
}
SETTINGS = RoutingSettings.model_validate(
    {
        "rules": [
            {"merchants": ["vip"], "gateways": ["stripe"]},
            {"methods": ["wallet:alipay"], "gateways": ["alipay"]},
            {
                "currencies": ["EUR"],
                "min_amount": "100.00",
                "max_amount": "5000",
                "gateways": ["stripe", "mock"],
            },
            {"currencies": ["GBP"], "gateways": ["mock"]},  # mock takes no GBP: nobody accepts
        ]
    }
)
CARD = CardMethod(token="tok_visa")


def call(minor: int = 10_000, currency: str = "EUR", method=CARD, merchant: str = "shop") -> RoutingCall:
    return RoutingCall(
        amount=Amount(minor=minor, currency=currency), method=method, merchant=merchant, default=DEFAULT
    )


def always(_: str) -> bool:
    return True


@pytest.mark.parametrize(
    ("routing_call", "gateway", "reason"),
    [
        (call(merchant="vip", currency="USD"), "stripe", "rule 1: first candidate"),
        (call(currency="USD", method=WalletMethod(wallet="alipay")), "alipay", "rule 2: first candidate"),
        (call(minor=10_000), "stripe", "rule 3: first candidate"),  # EUR 100.00: the lower bound counts
        (call(minor=500_000), "stripe", "rule 3: first candidate"),  # EUR 5000.00: so does the upper
        (call(minor=9_999), "mock", "no rule matched: default gateway"),
        (call(minor=500_001), "mock", "no rule matched: default gateway"),
        (call(currency="USD"), "mock", "no rule matched: default gateway"),
        (call(currency="GBP"), "mock", "rule 4: no candidate accepts the payment"),
    ],
)
def test_the_first_matching_rule_decides(routing_call, gateway, reason):
    decision = choose(routing_call, SETTINGS, PROFILES, always)
    assert (decision.gateway.id, decision.reason) == (gateway, reason)


def test_an_unhealthy_candidate_is_passed_over_and_all_unhealthy_still_routes():
    decision = choose(call(), SETTINGS, PROFILES, lambda g: g != "stripe")
    assert (decision.gateway.id, decision.skipped) == ("mock", ["stripe"])
    assert decision.reason == "rule 3: circuit open for stripe"
    nobody = choose(call(), SETTINGS, PROFILES, lambda g: False)
    assert (nobody.gateway.id, nobody.skipped) == ("stripe", ["stripe", "mock"])


def test_health_is_asked_only_of_the_candidate_that_would_get_the_payment():
    asked: list[str] = []
    choose(call(), SETTINGS, PROFILES, lambda g: asked.append(g) or True)
    assert asked == ["stripe"]  # asking claims a probe: never ask "just to know"


def test_money_is_written_as_strings():
    with pytest.raises(ValidationError, match="write money as a string"):
        RoutingSettings.model_validate({"rules": [{"min_amount": 1.5, "gateways": ["mock"]}]})
    with pytest.raises(ValidationError, match="min_amount is above max_amount"):
        RoutingSettings.model_validate(
            {"rules": [{"min_amount": "9", "max_amount": "1", "gateways": ["mock"]}]}
        )
    assert SETTINGS.rules[2].min_amount == Decimal("100.00")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


CIRCUIT = CircuitSettings(window_calls=10, min_calls=4, failure_ratio=0.5, open_seconds=30)


def test_a_5xx_burst_opens_the_circuit_and_a_good_probe_closes_it():
    clock = Clock()
    health = GatewayHealth(CIRCUIT, clock)
    metrics = GatewayMetrics(health=health)  # fed the way GatewayActivities feeds it
    for outcome in (GatewayOutcome.OK, GatewayOutcome.TRANSIENT, GatewayOutcome.UNKNOWN):
        metrics.observe("stripe", "authorize", outcome, 0.1)
    assert health.admit("stripe")  # 3 calls: too few to judge
    metrics.observe("stripe", "authorize", GatewayOutcome.TRANSIENT, 0.1)  # 3 of 4 transient
    assert health.state("stripe") is CircuitState.OPEN
    assert not health.admit("stripe")
    clock.now += 29
    assert not health.admit("stripe")
    clock.now += 2
    assert health.admit("stripe")  # the probe
    assert not health.admit("stripe")  # one at a time
    metrics.observe("stripe", "authorize", GatewayOutcome.DECLINED, 0.1)  # an answer: it is up
    assert health.state("stripe") is CircuitState.CLOSED
    assert health.admit("stripe")
    assert health.admit("mock")  # circuits are per gateway


def test_a_failed_probe_opens_it_again_and_declines_never_open_it():
    clock = Clock()
    health = GatewayHealth(CIRCUIT, clock)
    for _ in range(4):
        health.record("stripe", GatewayOutcome.TRANSIENT)
    clock.now += 31
    assert health.admit("stripe")
    health.record("stripe", GatewayOutcome.TRANSIENT)
    assert health.state("stripe") is CircuitState.OPEN and not health.admit("stripe")
    for _ in range(20):
        health.record("mock", GatewayOutcome.DECLINED)  # card declines say nothing of the gateway
    assert health.state("mock") is CircuitState.CLOSED


def test_routing_candidates_must_be_enabled_gateways():
    config = load_config(
        environ={},
        use_default_file=False,
        overrides={
            "payment": {"mock": {"enabled": True}, "routing": {"rules": [{"gateways": ["mock", "stripe"]}]}}
        },
    )
    assert config.payment.gateways == {"mock": {"enabled": True}}  # routing is no gateway section
    with pytest.raises(ConfigError, match="stripe is not an enabled gateway"):
        routing_settings(config, gateway_registry(config))
