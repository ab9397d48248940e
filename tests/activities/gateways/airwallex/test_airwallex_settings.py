"""`[payment.airwallex]`: hosts, the sandbox switch, secrets kept secret."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from activities.gateways.airwallex.settings import PRODUCTION_API_BASE, SANDBOX_API_BASE, AirwallexSettings
from activities.gateways.plugins import PLUGINS

REQUIRED = {"client_id": "cid", "api_key": "key-123456", "webhook_secret": "whsec_abcdef"}


def test_production_by_default_sandbox_on_request_and_an_override_wins():
    assert AirwallexSettings(**REQUIRED).endpoint == PRODUCTION_API_BASE
    assert AirwallexSettings(**REQUIRED, sandbox=True).endpoint == SANDBOX_API_BASE
    assert (
        AirwallexSettings(**REQUIRED, sandbox=True, api_base="http://127.0.0.1:9/").endpoint
        == "http://127.0.0.1:9"
    )


@pytest.mark.parametrize("base", ["http://api.airwallex.com", "ftp://127.0.0.1"])
def test_the_key_never_travels_in_clear_beyond_loopback(base):
    with pytest.raises(ValidationError):
        AirwallexSettings(**REQUIRED, api_base=base)


def test_secrets_are_masked_and_blank_ones_refused():
    settings = AirwallexSettings(**REQUIRED)
    assert "key-123456" not in repr(settings) and "whsec_abcdef" not in repr(settings)
    assert set(PLUGINS["airwallex"].secret_fields) == {"api_key", "webhook_secret"}
    with pytest.raises(ValidationError) as caught:
        AirwallexSettings(**{**REQUIRED, "api_key": "  "})
    assert "  " not in str(caught.value.errors(include_input=False))


def test_currencies_are_iso_codes():
    assert AirwallexSettings(**REQUIRED, currencies=["usd", "jpy"]).currencies == ["USD", "JPY"]
    with pytest.raises(ValidationError):
        AirwallexSettings(**REQUIRED, currencies=["XYZ"])
