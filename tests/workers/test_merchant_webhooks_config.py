"""`[merchant_webhooks]` and `[merchants.<id>]` webhook_url: the secret from the environment, checked
and masked; the endpoint lookup per merchant."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from workers.config import ConfigError, load_config
from workflows.merchant_events import MerchantEventType

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()


def test_url_in_toml_secret_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "durapay.toml"
    path.write_text(
        '[merchant_webhooks]\nurl = "https://merchant.example/hooks"\nenabled_events = ["refund.succeeded"]\n'
    )
    config = load_config(path, environ={"DURAPAY_MERCHANT_WEBHOOKS__SECRET": SECRET})
    endpoint = config.merchant_endpoint("default")
    assert endpoint is not None and endpoint.url == "https://merchant.example/hooks"
    assert endpoint.secret.get_secret_value() == SECRET
    assert endpoint.enabled_events == {MerchantEventType.REFUND_SUCCEEDED}
    assert SECRET not in repr(config)
    # A merchant without its own endpoint gets the global one.
    assert config.merchant_endpoint("m_1") == endpoint


OWN_SECRET = "whsec_" + base64.b64encode(b"o" * 32).decode()


def test_a_merchant_with_its_own_url_gets_its_own_endpoint(tmp_path: Path) -> None:
    path = tmp_path / "durapay.toml"
    path.write_text(
        '[merchant_webhooks]\nurl = "https://global.example/hooks"\nenabled_events = ["refund.succeeded"]\n'
        '[merchants.acme]\nwebhook_url = "https://acme.example/hooks"\n[merchants.other]\n'
    )
    environ = {
        "DURAPAY_MERCHANT_WEBHOOKS__SECRET": SECRET,
        "DURAPAY_MERCHANTS__ACME__WEBHOOK_SECRET": OWN_SECRET,
    }
    config = load_config(path, environ=environ)
    own = config.merchant_endpoint("acme")
    assert own is not None and own.url == "https://acme.example/hooks"
    assert own.secret.get_secret_value() == OWN_SECRET
    assert own.enabled_events == {MerchantEventType.REFUND_SUCCEEDED}
    # A configured merchant without a webhook_url, and an unknown one: the global endpoint.
    for merchant_id in ("other", "default"):
        endpoint = config.merchant_endpoint(merchant_id)
        assert endpoint is not None and endpoint.url == "https://global.example/hooks"
        assert endpoint.secret.get_secret_value() == SECRET
    assert OWN_SECRET not in repr(config)


def test_a_merchant_url_without_its_secret_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "durapay.toml"
    path.write_text('[merchants.acme]\nwebhook_url = "https://acme.example/hooks"\n')
    with pytest.raises(ConfigError, match="webhook_secret"):
        load_config(path, environ={})
    with pytest.raises(ConfigError, match="merchants"):
        load_config(path, environ={"DURAPAY_MERCHANTS__ACME__WEBHOOK_SECRET": "not-a-whsec"})


def test_defaults_send_nothing_and_enable_every_type(tmp_path: Path) -> None:
    config = load_config(None, environ={}, use_default_file=False)
    assert config.merchant_endpoint("default") is None
    assert set(config.merchant_webhooks.enabled_events) == set(MerchantEventType)


@pytest.mark.parametrize(
    "environ",
    [
        {"DURAPAY_MERCHANT_WEBHOOKS__URL": "https://merchant.example/hooks"},  # no secret
        {"DURAPAY_MERCHANT_WEBHOOKS__SECRET": "not-a-whsec"},
        {"DURAPAY_MERCHANT_WEBHOOKS__ENABLED_EVENTS": '["payment.teleported"]'},
    ],
)
def test_bad_settings_are_refused_without_echoing_the_secret(environ: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="merchant_webhooks") as raised:
        load_config(None, environ=environ, use_default_file=False)
    assert "not-a-whsec" not in str(raised.value)
