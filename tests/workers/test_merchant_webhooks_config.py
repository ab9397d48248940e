"""`[merchant_webhooks]`: the secret from the environment, checked and masked; the endpoint lookup."""

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
    endpoint = config.merchant_webhooks.endpoint_for(None)
    assert endpoint is not None and endpoint.url == "https://merchant.example/hooks"
    assert endpoint.secret.get_secret_value() == SECRET
    assert endpoint.enabled_events == {MerchantEventType.REFUND_SUCCEEDED}
    assert SECRET not in repr(config)
    # One endpoint for every merchant until per-merchant endpoints exist.
    assert config.merchant_webhooks.endpoint_for("m_1") == endpoint


def test_defaults_send_nothing_and_enable_every_type(tmp_path: Path) -> None:
    config = load_config(None, environ={}, use_default_file=False)
    assert config.merchant_webhooks.endpoint_for(None) is None
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
