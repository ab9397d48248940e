"""Fraud rules: a pure, explainable 0-100 score, and the activity that feeds it velocity counts.

Each rule that fires adds its configured points and names itself in `reasons`. The decision here
follows the engine's own thresholds; the workflow additionally blocks any score above the
payment's `risk_threshold`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from temporalio import activity

from activities.fraud_providers.kount.adapter import KountSettings
from activities.fraud_providers.sift.adapter import SiftSettings
from activities.fraud_providers.signifyd.adapter import SignifydSettings
from activities.store.repository import PaymentStore
from workflows import activity_names
from workflows.domain import FraudDecision, FraudPolicy, FraudResult
from workflows.ledger_io import FraudCheckRequest
from workflows.money import exponent


class _Settings(BaseModel):
    # A typo in the [fraud_detection] section must fail loudly, not silently use a default.
    model_config = ConfigDict(extra="forbid", frozen=True)


class VelocityLimits(_Settings):
    """How many payments one customer / IP / card may make within `window_seconds` (None: no
    limit). The payment being checked counts as one of them."""

    window_seconds: int = Field(default=3600, gt=0)
    per_customer: int | None = Field(default=5, ge=1)
    per_ip: int | None = Field(default=10, ge=1)
    per_card: int | None = Field(default=3, ge=1)


class FraudWeights(_Settings):
    """Points each rule adds to the score when it fires."""

    high_amount: int = Field(default=35, ge=0, le=100)
    customer_velocity: int = Field(default=30, ge=0, le=100)
    ip_velocity: int = Field(default=25, ge=0, le=100)
    card_velocity: int = Field(default=40, ge=0, le=100)


def _default_high_amounts() -> dict[str, int]:
    # Roughly USD 1,000 each. Minor units differ per currency, which is why these are per currency.
    return {"USD": 100_000, "EUR": 100_000, "GBP": 100_000, "JPY": 150_000, "CNY": 700_000}


ProviderName = Literal["rules", "sift", "signifyd", "kount"]


class FraudSettings(_Settings):
    """The `[fraud_detection]` configuration section."""

    enabled: bool = True
    # Who decides after the rules: the rules alone, or a screening service (its section below).
    provider: ProviderName = "rules"
    # What a screening service that stays unreachable past its short retry budget counts as.
    on_provider_error: FraudDecision = FraudDecision.REVIEW
    # A payment held for review and not decided within this is rejected (voided, order released).
    review_timeout_hours: float = Field(default=24, gt=0)
    sift: SiftSettings | None = None
    signifyd: SignifydSettings | None = None
    kount: KountSettings | None = None
    # Amount (minor units of that currency) from which a payment counts as high.
    high_amount_minor: dict[str, int] = Field(default_factory=_default_high_amounts)
    # For currencies not listed above; None disables the rule for them. Being in minor units it
    # means different money in different currencies: list the currencies you take.
    high_amount_default_minor: int | None = Field(default=100_000, gt=0)
    velocity: VelocityLimits = Field(default_factory=VelocityLimits)
    # Points when the card's issuing country differs from the customer's IP country.
    country_mismatch_score: int = Field(default=20, ge=0, le=100)
    weights: FraudWeights = Field(default_factory=FraudWeights)
    review_threshold: int = Field(default=50, ge=0, le=100)
    block_threshold: int = Field(default=90, ge=0, le=100)

    @field_validator("high_amount_minor")
    @classmethod
    def _known_currencies(cls, value: dict[str, int]) -> dict[str, int]:
        thresholds = {}
        for currency, minor in value.items():
            exponent(currency)  # raises for a code that is not ISO 4217
            if minor <= 0:
                raise ValueError(f"high_amount_minor.{currency} must be positive")
            thresholds[currency.upper()] = minor
        return thresholds

    @model_validator(mode="after")
    def _ordered_thresholds(self) -> FraudSettings:
        if self.review_threshold > self.block_threshold:
            raise ValueError("review_threshold must not be above block_threshold")
        if self.provider != "rules" and getattr(self, self.provider) is None:
            raise ValueError(
                f"provider is {self.provider!r} but [fraud_detection.{self.provider}] is missing"
            )
        return self

    def policy(self, rules: FraudResult) -> FraudPolicy:
        """How a payment's check goes on after `rules`: a service is asked unless the rules blocked."""
        screen = self.enabled and self.provider != "rules" and rules.decision is not FraudDecision.BLOCK
        return FraudPolicy(
            provider=self.provider if screen else None,
            on_provider_error=self.on_provider_error,
            review_timeout_seconds=max(1, round(self.review_timeout_hours * 3600)),
        )

    def high_amount_threshold(self, currency: str) -> int | None:
        return self.high_amount_minor.get(currency.upper(), self.high_amount_default_minor)


class VelocityCounts(BaseModel):
    """Other payments made recently with the same customer / IP / card; None when the request
    carries no such key (or its limit is off), so the rule cannot fire."""

    model_config = ConfigDict(frozen=True)

    customer: int | None = Field(default=None, ge=0)
    ip: int | None = Field(default=None, ge=0)
    card: int | None = Field(default=None, ge=0)


def score(
    request: FraudCheckRequest, velocity_counts: VelocityCounts, settings: FraudSettings
) -> FraudResult:
    """Score one payment. Pure: the same inputs always give the same result."""
    if not settings.enabled:
        return FraudResult(score=0, decision=FraudDecision.ALLOW)
    weights = settings.weights
    limits = settings.velocity
    fired: list[tuple[str, int]] = []

    threshold = settings.high_amount_threshold(request.amount.currency)
    if threshold is not None and request.amount.minor >= threshold:
        fired.append(("high_amount", weights.high_amount))

    for reason, count, limit, points in (
        ("customer_velocity", velocity_counts.customer, limits.per_customer, weights.customer_velocity),
        ("ip_velocity", velocity_counts.ip, limits.per_ip, weights.ip_velocity),
        ("card_velocity", velocity_counts.card, limits.per_card, weights.card_velocity),
    ):
        # `count` excludes this payment: it is the (count + 1)-th in the window.
        if count is not None and limit is not None and count + 1 > limit:
            fired.append((reason, points))

    if (
        request.card_country
        and request.ip_country
        and request.card_country.upper() != request.ip_country.upper()
    ):
        fired.append(("country_mismatch", settings.country_mismatch_score))

    total = min(100, sum(points for _, points in fired))
    if total >= settings.block_threshold:
        decision = FraudDecision.BLOCK
    elif total >= settings.review_threshold:
        decision = FraudDecision.REVIEW
    else:
        decision = FraudDecision.ALLOW
    return FraudResult(score=total, decision=decision, reasons=[reason for reason, _ in fired])


class FraudActivities:
    """The fraud check as a Temporal (local) activity: counts velocity in the store, then scores.
    It returns the result; the workflow compares the score with its `risk_threshold`."""

    def __init__(self, store: PaymentStore, settings: FraudSettings) -> None:
        self._store = store
        self._settings = settings

    @activity.defn(name=activity_names.CHECK_FRAUD)
    async def check(self, request: FraudCheckRequest) -> FraudResult:
        """The rules' result, with the policy the workflow follows next (screening, review)."""
        rules = await self._rules(request)
        return rules.model_copy(update={"policy": self._settings.policy(rules)})

    async def _rules(self, request: FraudCheckRequest) -> FraudResult:
        settings = self._settings
        if not settings.enabled:
            return score(request, VelocityCounts(), settings)
        limits = settings.velocity
        since = datetime.now(UTC) - timedelta(seconds=limits.window_seconds)

        # Counted only by a key the request carries and whose limit is on: the others stay None.
        keys = {
            field: (column, value)
            for field, column, limit, value in (
                ("customer", "customer_id", limits.per_customer, request.customer_id),
                ("ip", "customer_ip", limits.per_ip, request.customer_ip),
                ("card", "card_fingerprint", limits.per_card, request.card_fingerprint),
            )
            if limit is not None and value is not None
        }
        found: dict[str, int] = {}
        if keys:  # else no query at all
            by_column = dict(keys.values())
            found = await self._store.count_recent(since, by_column, exclude_payment_id=request.payment_id)
        counts = VelocityCounts(**{field: found[column] for field, (column, _) in keys.items()})
        return score(request, counts, settings)

    def definitions(self) -> list[Callable[..., Any]]:
        return [self.check]
