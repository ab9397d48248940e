"""What the workflow asks the worker's router (a local activity) and what it answers."""

from __future__ import annotations

from pydantic import Field

from workflows.domain import Contract, GatewayProfile, PaymentMethod
from workflows.money import Amount


class RoutingCall(Contract):
    amount: Amount
    method: PaymentMethod
    merchant: str
    default: GatewayProfile  # what the API chose (the default gateway): kept when no rule matches


class RoutingDecision(Contract):
    gateway: GatewayProfile
    reason: str
    skipped: list[str] = Field(default_factory=list)
