from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError
from temporalio.testing import ActivityEnvironment

from activities.fraud import FraudActivities, FraudSettings, VelocityCounts, score
from activities.store.repository import PaymentStore
from tests.activities.store.helpers import engine, make_view, store
from workflows import activity_names
from workflows.domain import CardMethod, FraudDecision, FraudPolicy, FraudResult
from workflows.ledger_io import FraudCheckRequest, PaymentTransition
from workflows.money import Amount

SETTINGS = FraudSettings()
NO_COUNTS = VelocityCounts()


def request(minor: int = 5000, currency: str = "USD", **fields) -> FraudCheckRequest:
    return FraudCheckRequest(payment_id="pay_1", amount=Amount(minor=minor, currency=currency), **fields)


# ---------------------------------------------------------------------- scoring


def test_an_ordinary_payment_scores_zero() -> None:
    assert score(request(), VelocityCounts(customer=0, ip=0, card=0), SETTINGS) == FraudResult(
        score=0, decision=FraudDecision.ALLOW, reasons=[]
    )


@pytest.mark.parametrize(
    ("minor", "currency", "fires"),
    [
        (99_999, "USD", False),
        (100_000, "USD", True),  # at the threshold
        (149_999, "JPY", False),  # JPY has its own threshold, in yen
        (150_000, "JPY", True),
        (100_000, "CHF", True),  # unlisted: the default threshold
        (99_999, "CHF", False),
    ],
)
def test_high_amount_thresholds_are_per_currency(minor: int, currency: str, fires: bool) -> None:
    result = score(request(minor, currency), NO_COUNTS, SETTINGS)
    assert (result.reasons == ["high_amount"]) is fires
    assert result.score == (SETTINGS.weights.high_amount if fires else 0)


def test_high_amount_rule_can_be_off_for_unlisted_currencies() -> None:
    settings = FraudSettings(high_amount_minor={"usd": 500}, high_amount_default_minor=None)
    assert settings.high_amount_minor == {"USD": 500}
    assert score(request(500, "USD"), NO_COUNTS, settings).reasons == ["high_amount"]
    assert score(request(10**9, "EUR"), NO_COUNTS, settings).reasons == []


@pytest.mark.parametrize(
    ("counts", "reasons"),
    [
        # Limits 5 / 10 / 3 per window; the counts are *other* payments, this one is one more.
        (VelocityCounts(customer=4, ip=9, card=2), []),
        (VelocityCounts(customer=5), ["customer_velocity"]),
        (VelocityCounts(ip=10), ["ip_velocity"]),
        (VelocityCounts(card=3), ["card_velocity"]),
        (VelocityCounts(customer=50, ip=50, card=50), ["customer_velocity", "ip_velocity", "card_velocity"]),
    ],
)
def test_velocity_rules_fire_beyond_their_limits(counts: VelocityCounts, reasons: list[str]) -> None:
    assert score(request(), counts, SETTINGS).reasons == reasons


def test_a_velocity_limit_can_be_switched_off() -> None:
    settings = FraudSettings.model_validate({"velocity": {"per_ip": None}})
    assert score(request(), VelocityCounts(ip=1000), settings).reasons == []


@pytest.mark.parametrize(
    ("card_country", "ip_country", "fires"),
    [("US", "DE", True), ("us", "US", False), ("US", None, False), (None, "DE", False)],
)
def test_country_mismatch_needs_both_countries(card_country, ip_country, fires: bool) -> None:
    result = score(request(card_country=card_country, ip_country=ip_country), NO_COUNTS, SETTINGS)
    assert result.reasons == (["country_mismatch"] if fires else [])
    assert result.score == (SETTINGS.country_mismatch_score if fires else 0)


def test_points_add_up_to_a_decision_and_cap_at_100() -> None:
    settings = FraudSettings(review_threshold=30, block_threshold=60)
    review = score(request(100_000), NO_COUNTS, settings)
    assert (review.score, review.decision) == (35, FraudDecision.REVIEW)

    block = score(request(100_000), VelocityCounts(card=3), settings)
    assert (block.score, block.decision, block.reasons) == (
        75,
        FraudDecision.BLOCK,
        ["high_amount", "card_velocity"],
    )

    everything = score(
        request(100_000, card_country="US", ip_country="NG"),
        VelocityCounts(customer=9, ip=99, card=9),
        settings,
    )
    assert everything.score == 100  # 35 + 30 + 25 + 40 + 20, capped
    assert everything.reasons == [
        "high_amount",
        "customer_velocity",
        "ip_velocity",
        "card_velocity",
        "country_mismatch",
    ]


def test_disabled_rules_allow_everything() -> None:
    settings = FraudSettings(enabled=False)
    result = score(request(10**9, card_country="US", ip_country="NG"), VelocityCounts(card=99), settings)
    assert result == FraudResult(score=0, decision=FraudDecision.ALLOW)


# ---------------------------------------------------------------------- settings


def test_settings_load_from_a_config_section() -> None:
    section = {
        "enabled": True,
        "high_amount_minor": {"EUR": 50_000},
        "high_amount_default_minor": 20_000,
        "velocity": {"window_seconds": 600, "per_customer": 2, "per_ip": 4, "per_card": 1},
        "country_mismatch_score": 50,
        "weights": {"high_amount": 10, "card_velocity": 80},
        "review_threshold": 40,
        "block_threshold": 80,
    }
    settings = FraudSettings.model_validate(section)
    assert settings.velocity.window_seconds == 600
    assert settings.weights.card_velocity == 80 and settings.weights.ip_velocity == 25  # others keep defaults
    assert settings.high_amount_threshold("eur") == 50_000 and settings.high_amount_threshold("USD") == 20_000


@pytest.mark.parametrize(
    "section",
    [
        {"high_amount_minor": {"XXX": 100}},  # not a currency
        {"high_amount_minor": {"USD": 0}},
        {"review_threshold": 90, "block_threshold": 50},
        {"weights": {"high_amount": 101}},
        {"velocity": {"window_seconds": 0}},
        {"velocity_window": 60},  # a typo is an error, not a silent default
        {"weights": {"highamount": 5}},
    ],
)
def test_bad_settings_are_refused(section: dict) -> None:
    with pytest.raises(ValidationError):
        FraudSettings.model_validate(section)


# ---------------------------------------------------------------------- activity


async def test_the_activity_counts_recent_payments_by_customer_ip_and_card(
    store: PaymentStore, unique: str
) -> None:
    now = datetime.now(UTC)
    card = CardMethod(token="tok", fingerprint=f"fp_{unique}", country="US")
    ip = f"10.{int(unique[:2], 16)}.{int(unique[2:4], 16)}.{int(unique[4:6], 16)}"
    # Three recent payments with this card, IP and customer, one from long ago, and one other customer.
    for i, age in enumerate(
        (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=30), timedelta(days=2))
    ):
        at = now - age
        view = make_view(
            f"pay_{i}{unique}",
            method=card,
            customer_id=f"cus_{unique}",
            customer_ip=ip,
            created_at=at,
            updated_at=at,
        )
        await store.record_transition(PaymentTransition(view=view))
    stranger = make_view(f"pay_s{unique}", customer_id=f"other_{unique}", created_at=now, updated_at=now)
    await store.record_transition(PaymentTransition(view=stranger))

    settings = FraudSettings.model_validate(
        {"velocity": {"window_seconds": 3600, "per_customer": 4, "per_ip": 3, "per_card": 3}}
    )
    activities = FraudActivities(store, settings)
    [check] = activities.definitions()
    assert check.__temporal_activity_definition.name == activity_names.CHECK_FRAUD

    checked = FraudCheckRequest(
        # The payment being checked is already recorded (pay_0): it does not count against itself.
        payment_id=f"pay_0{unique}",
        amount=Amount(minor=500, currency="USD"),
        customer_id=f"cus_{unique}",
        customer_ip=ip,
        card_fingerprint=f"fp_{unique}",
        card_country="US",
        ip_country="US",
    )
    result = await ActivityEnvironment().run(check, checked)
    # 2 others in the window: customer (limit 4) fine; IP and card (limit 3) reached exactly, fine.
    # The rules decide alone (no provider configured) and hand on the review deadline.
    assert result == FraudResult(score=0, decision=FraudDecision.ALLOW, policy=FraudPolicy())

    new = checked.model_copy(update={"payment_id": f"pay_new{unique}"})
    result = await ActivityEnvironment().run(check, new)
    # 3 others: the new one is the 4th -> IP and card over their limit of 3, the customer is not.
    assert result.reasons == ["ip_velocity", "card_velocity"]
    assert result.score == SETTINGS.weights.ip_velocity + SETTINGS.weights.card_velocity


async def test_the_activity_skips_the_store_when_disabled_or_without_keys() -> None:
    class NoStore:
        async def count_recent(self, *args, **kwargs):
            raise AssertionError("the store must not be queried")

    disabled = FraudActivities(NoStore(), FraudSettings(enabled=False))  # type: ignore[arg-type]
    assert (await ActivityEnvironment().run(disabled.check, request(10**9))).score == 0

    enabled = FraudActivities(NoStore(), SETTINGS)  # type: ignore[arg-type]
    result = await ActivityEnvironment().run(enabled.check, request(100_000))  # no customer, IP or card
    assert result.reasons == ["high_amount"]
