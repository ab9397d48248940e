"""`[payment.braintree]`: secrets masked, a fake only on this machine, accounts per currency."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from activities.gateways.braintree.adapter import environment
from activities.gateways.braintree.settings import BraintreeSettings

BASE = {"merchant_id": "m1", "public_key": "pub1", "private_key": "very-private-value"}


def test_private_key_is_masked_everywhere() -> None:
    settings = BraintreeSettings.model_validate(BASE)
    assert "very-private-value" not in repr(settings)
    assert "very-private-value" not in settings.model_dump_json()
    assert settings.environment == "sandbox"


@pytest.mark.parametrize(
    "api_base",
    ["http://api.example.com:8080", "https://127.0.0.1:443", "http://127.0.0.1", "http://127.0.0.1:9/x"],
)
def test_api_base_is_for_a_local_fake_only(api_base: str) -> None:
    with pytest.raises(ValidationError) as caught:
        BraintreeSettings.model_validate({**BASE, "api_base": api_base})
    assert "very-private-value" not in str(caught.value)


def test_environment_is_sandbox_production_or_the_local_fake() -> None:
    sandbox = environment(BraintreeSettings.model_validate(BASE))
    production = environment(BraintreeSettings.model_validate({**BASE, "environment": "production"}))
    fake = environment(BraintreeSettings.model_validate({**BASE, "api_base": "http://127.0.0.1:4567"}))
    assert (sandbox.server, sandbox.is_ssl) == ("api.sandbox.braintreegateway.com", True)
    assert (production.server, production.is_ssl) == ("api.braintreegateway.com", True)
    assert (fake.base_url, fake.is_ssl) == ("http://127.0.0.1:4567", False)
    with pytest.raises(ValidationError):
        BraintreeSettings.model_validate({**BASE, "environment": "qa"})


def test_merchant_accounts_name_configured_currencies() -> None:
    settings = BraintreeSettings.model_validate(
        {**BASE, "currencies": ["usd", "eur"], "merchant_accounts": {"eur": "acct_eur"}}
    )
    assert (settings.currencies, settings.merchant_accounts) == (["USD", "EUR"], {"EUR": "acct_eur"})
    with pytest.raises(ValidationError, match="not in currencies"):
        BraintreeSettings.model_validate({**BASE, "merchant_accounts": {"GBP": "acct_gbp"}})
    with pytest.raises(ValidationError):
        BraintreeSettings.model_validate({**BASE, "currencies": ["XXY"]})
