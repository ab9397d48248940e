"""`[payment.stripe]`: validation, secrets that never show, and building through the registry."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from activities.gateways.base import GatewayConfigError
from activities.gateways.registry import GatewayRegistry
from activities.gateways.stripe.adapter import StripeGateway
from activities.gateways.stripe.settings import StripeSettings

SECRET_KEY = "sk_test_51Secretdonotshow"
WEBHOOK_SECRET = "whsec_alsodonotshow"


def section(**overrides):
    return {"enabled": True, "secret_key": SECRET_KEY, "webhook_secret": WEBHOOK_SECRET, **overrides}


def test_defaults_and_normalization():
    settings = StripeSettings.model_validate(section(currencies=["usd", "jpy"]))

    assert [s.get_secret_value() for s in settings.webhook_secret] == [WEBHOOK_SECRET]
    assert settings.currencies == ["USD", "JPY"]
    assert settings.max_network_retries == 0  # Temporal retries, not the SDK
    assert settings.webhook_tolerance_seconds == 300
    assert settings.api_base == "https://api.stripe.com"


@pytest.mark.parametrize(
    ("overrides", "complaint"),
    [
        ({"secret_key": "pk_test_publishable"}, "secret_key"),
        ({"webhook_secret": []}, "webhook_secret"),
        ({"webhook_secret": ["whsec_a", "  "]}, "blank"),
        ({"currencies": ["USD", "XYZ"]}, "XYZ"),
        ({"statement_descriptor_suffix": "BAD*"}, "Latin"),
        ({"statement_descriptor_suffix": "12345"}, "letter"),
        ({"statement_descriptor": "DURAPAY SHOP", "statement_descriptor_suffix": "ORDER 1234567"}, "22"),
        ({"min_minor": 100, "max_minor": 10}, "min_minor"),
        ({"api_key": "sk_test_typo"}, "api_key"),
        ({"api_base": "http://stripe.example.com"}, "https"),
    ],
)
def test_invalid_sections_are_refused_with_a_reason(overrides, complaint):
    with pytest.raises(ValidationError) as caught:
        StripeSettings.model_validate(section(**overrides))

    assert complaint in str(caught.value)
    assert SECRET_KEY not in str(caught.value) and WEBHOOK_SECRET not in str(caught.value)


async def test_secrets_never_show():
    settings = StripeSettings.model_validate(section())
    gateway = StripeGateway(settings)
    try:
        shown = " ".join([repr(settings), str(settings), settings.model_dump_json(), repr(gateway)])
    finally:
        await gateway.aclose()

    assert SECRET_KEY not in shown and WEBHOOK_SECRET not in shown


async def test_the_registry_builds_stripe_from_its_section():
    registry = GatewayRegistry.from_config(
        {"stripe": section(currencies=["EUR"], min_minor=100, max_minor=500_000), "mock": {"enabled": False}}
    )
    try:
        gateway = registry.get("stripe")
        assert isinstance(gateway, StripeGateway)
        profile = registry.profiles()["stripe"]
        assert (profile.name, profile.methods, profile.currencies) == ("Stripe", ["card"], ["EUR"])
        assert (profile.min_minor, profile.max_minor) == (100, 500_000)
        assert profile.supports_manual_capture and profile.supports_partial_capture
    finally:
        await registry.aclose()


def test_a_bad_section_fails_the_registry_without_echoing_the_secret():
    with pytest.raises(GatewayConfigError) as caught:
        GatewayRegistry.from_config({"stripe": section(secret_key="pk_live_wrongkind")})

    assert "secret_key" in caught.value.message and "pk_live_wrongkind" not in caught.value.message
