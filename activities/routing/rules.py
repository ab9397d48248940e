"""`[payment.routing]`: ordered rules, each matching by currency, method, amount range and merchant
and naming candidate gateways in order of preference. The first matching rule decides; its first
candidate that accepts the payment and whose circuit admits it gets it.

    [payment.routing]
    [[payment.routing.rules]]
    currencies = ["EUR"]
    methods = ["card"]
    min_amount = "100.00"      # inclusive, in the payment's currency; strings, never floats
    gateways = ["stripe", "mock"]
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from activities.routing.health import CircuitSettings
from workflows.domain import CaptureMethod, GatewayProfile
from workflows.routing_io import RoutingCall, RoutingDecision
from workflows.validation import method_key, validate_payment


class RoutingRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Empty: any. Methods as `GatewayProfile.methods` names them: "card", "wallet:alipay", ...
    currencies: list[str] = Field(default_factory=list)
    methods: list[str] = Field(default_factory=list)
    merchants: list[str] = Field(default_factory=list)  # merchant ids
    min_amount: Decimal | None = None
    max_amount: Decimal | None = None  # inclusive
    gateways: list[str] = Field(min_length=1)

    @field_validator("min_amount", "max_amount", mode="before")
    @classmethod
    def _no_float_money(cls, value: Any) -> Any:
        if isinstance(value, float):
            raise ValueError(f'write money as a string, e.g. "{value}"')
        if isinstance(value, str):
            try:
                return Decimal(value)
            except InvalidOperation:
                raise ValueError(f"{value!r} is not a decimal amount") from None
        return value

    @field_validator("currencies")
    @classmethod
    def _upper(cls, value: list[str]) -> list[str]:
        return [c.upper() for c in value]

    def matches(self, call: RoutingCall) -> bool:
        amount = call.amount.to_decimal()
        return (
            (not self.currencies or call.amount.currency in self.currencies)
            and (
                not self.methods
                or method_key(call.method) in self.methods
                or call.method.type in self.methods
            )
            and (not self.merchants or call.merchant in self.merchants)
            and (self.min_amount is None or amount >= self.min_amount)
            and (self.max_amount is None or amount <= self.max_amount)
        )


class RoutingSettings(BaseModel):
    """The `[payment.routing]` section."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: list[RoutingRule] = Field(default_factory=list)
    circuit: CircuitSettings = Field(default_factory=CircuitSettings)

    @model_validator(mode="after")
    def _ranges(self) -> RoutingSettings:
        for i, rule in enumerate(self.rules, 1):
            if (
                rule.min_amount is not None
                and rule.max_amount is not None
                and rule.min_amount > rule.max_amount
            ):
                raise ValueError(f"rule {i}: min_amount is above max_amount")
        return self


def choose(
    call: RoutingCall,
    settings: RoutingSettings,
    profiles: dict[str, GatewayProfile],
    admit: Callable[[str], bool],
) -> RoutingDecision:
    """The gateway for `call`. `admit(gateway)` asks its circuit (and may claim a probe), so it is
    asked only of a candidate that would otherwise get the payment."""
    for number, rule in enumerate(settings.rules, 1):
        if not rule.matches(call):
            continue
        capture = CaptureMethod.AUTOMATIC  # capture support is checked again by the workflow
        usable = [
            profiles[g]
            for g in rule.gateways
            if g in profiles and validate_payment(profiles[g], call.amount, call.method, capture) is None
        ]
        if not usable:
            return RoutingDecision(
                gateway=call.default, reason=f"rule {number}: no candidate accepts the payment"
            )
        skipped: list[str] = []
        for profile in usable:
            if admit(profile.id):
                why = "first candidate" if not skipped else f"circuit open for {', '.join(skipped)}"
                return RoutingDecision(gateway=profile, reason=f"rule {number}: {why}", skipped=skipped)
            skipped.append(profile.id)
        # Every candidate is unhealthy: try the preferred one anyway rather than refuse the payment.
        return RoutingDecision(
            gateway=usable[0], reason=f"rule {number}: every candidate's circuit is open", skipped=skipped
        )
    return RoutingDecision(gateway=call.default, reason="no rule matched: default gateway")
