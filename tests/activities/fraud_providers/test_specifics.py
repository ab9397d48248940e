"""What is particular to one service: Kount's token life, Sift's decision list and amounts,
Signifyd's inverted score, and the configuration of the three."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from activities.fraud import FraudSettings
from activities.fraud_providers.http import json_body
from activities.fraud_providers.kount.fake import FakeKount
from activities.fraud_providers.sift import transform as sift
from activities.fraud_providers.signifyd import transform as signifyd
from tests.activities.fraud_providers.cases import screening_call, service
from workers.config import MASK, load_config
from workers.worker import fraud_settings
from workflows.domain import FraudDecision, FraudResult
from workflows.money import Amount


async def test_kount_keeps_its_token_and_renews_it_once_when_refused():
    async with service("kount") as svc:
        assert isinstance(svc.fake, FakeKount)
        await svc.provider.screen(screening_call("kount"))
        await svc.provider.screen(screening_call("kount"))
        assert svc.fake.tokens_issued == 1
        svc.fake.expire_tokens()  # Kount ended the token early: 401, one new token, then the call
        verdict = await svc.provider.screen(screening_call("kount"))
        assert verdict.decision is FraudDecision.ALLOW
        assert svc.fake.tokens_issued == 2
        assert len(svc.fake.received) == 3


async def test_sift_reads_the_decision_list_once():
    async with service("sift") as svc:
        for email in ("a@x.io", "block@x.io", "b@x.io"):
            await svc.provider.screen(screening_call("sift", email))
        # Both decision ids were in the first list: no second read.
        assert [r.path for r in svc.fake.received].count("/v205/events") == 3


@pytest.mark.parametrize(
    ("minor", "currency", "micros"),
    [(123, "USD", 1_230_000), (1, "JPY", 1_000_000), (1, "KWD", 1_000), (0, "EUR", 0)],
)
def test_sift_amounts_are_micros(minor, currency, micros):
    assert sift.micros(Amount(minor=minor, currency=currency)) == micros


def test_sift_sends_an_unusable_customer_id_as_the_session():
    event = sift.create_order(screening_call("sift", customer_id="ann smith"), "k")
    assert "$user_id" not in event and event["$session_id"] == "pay_1"
    assert sift.create_order(screening_call("sift", customer_id="cus_1"), "k")["$user_id"] == "cus_1"


def test_sift_without_a_workflow_decides_by_score():
    body = {"status": 0, "score_response": {"status": 0, "scores": {"payment_abuse": {"score": 0.93}}}}
    verdict = sift.verdict(body, {}, review_threshold=50, block_threshold=90)
    assert (verdict.decision, verdict.score) == (FraudDecision.BLOCK, 93)


@pytest.mark.parametrize(
    ("action", "score", "decision", "risk"),
    [
        ("ACCEPT", 1000, FraudDecision.ALLOW, 0),
        ("HOLD", 455, FraudDecision.REVIEW, 55),
        ("REJECT", 0, FraudDecision.BLOCK, 100),
        ("PENDING", None, FraudDecision.REVIEW, 0),
    ],
)
def test_signifyd_score_is_inverted(action, score, decision, risk):
    verdict = signifyd.verdict({"signifydId": 7, "decision": {"checkpointAction": action, "score": score}})
    assert verdict is not None
    assert (verdict.decision, verdict.score, verdict.reference) == (decision, risk, "7")


def test_signifyd_answer_without_a_decision_is_no_verdict():
    assert signifyd.verdict({"signifydId": 7}) is None


def test_json_amounts_are_exact_numbers_and_strings_stay_strings():
    assert json_body({"a": Decimal("0.10"), "b": "dec-0:1"}) == b'{"a":0.10,"b":"dec-0:1"}'


def test_provider_sections_come_from_the_environment_and_are_masked():
    config = load_config(
        environ={
            "DURAPAY_FRAUD_DETECTION__PROVIDER": "sift",
            "DURAPAY_FRAUD_DETECTION__SIFT__API_KEY": "sift-secret-key",
            "DURAPAY_FRAUD_DETECTION__SIFT__ACCOUNT_ID": "acct_9",
            "DURAPAY_FRAUD_DETECTION__ON_PROVIDER_ERROR": "block",
        },
        use_default_file=False,
    )
    settings = fraud_settings(config)
    assert settings.provider == "sift" and settings.on_provider_error is FraudDecision.BLOCK
    assert settings.sift is not None and settings.sift.api_key.get_secret_value() == "sift-secret-key"
    assert "sift-secret-key" not in repr(settings)
    assert config.masked()["fraud_detection"]["sift"]["api_key"] == MASK


def test_a_provider_needs_its_section():
    with pytest.raises(ValidationError, match=r"\[fraud_detection.kount\] is missing"):
        FraudSettings(provider="kount")


def test_the_rules_hand_on_to_the_provider_unless_they_block():
    settings = FraudSettings.model_validate(
        {"provider": "signifyd", "signifyd": {"api_key": "k"}, "review_timeout_hours": 2}
    )
    allow = settings.policy(FraudResult(score=10, decision=FraudDecision.ALLOW))
    block = settings.policy(FraudResult(score=95, decision=FraudDecision.BLOCK))
    assert (allow.provider, allow.review_timeout_seconds) == ("signifyd", 7200)
    assert block.provider is None  # the rules decided alone
