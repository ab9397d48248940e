"""The plugin descriptors: one per gateway folder, secret fields read from the settings models, the
descriptor modules free of provider SDKs, and every fake's section accepted by its own gateway."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from activities.gateways import plugins as plugins_module
from activities.gateways.base import GatewayConfigError
from activities.gateways.mock import PLUGIN as MOCK
from activities.gateways.plugin import GatewayPlugin, WebhookNeeds
from activities.gateways.plugins import PLUGINS

GATEWAYS_DIR = Path(plugins_module.__file__).parent


def test_every_gateway_folder_is_a_plugin_listed_under_its_id() -> None:
    folders = sorted(p.name for p in GATEWAYS_DIR.iterdir() if (p / "__init__.py").is_file())
    assert folders == sorted(PLUGINS)
    assert {"alipay", "mock", "stripe", "wechat_pay"} <= set(PLUGINS)
    for gateway_id, plugin in PLUGINS.items():
        assert plugin.id == gateway_id
        assert plugin.settings.startswith(f"activities.gateways.{gateway_id}.")
        assert plugin.builder.startswith(f"activities.gateways.{gateway_id}.")
        assert plugin.demo_flows == f"activities.gateways.{gateway_id}.demo:FLOWS"
        assert plugin.testkit == f"activities.gateways.{gateway_id}.testkit:Kit"


def test_every_gateway_shows_its_own_demo_flows() -> None:
    flows = {
        gateway_id: [flow.name for flow in plugin.load_demo_flows()] for gateway_id, plugin in PLUGINS.items()
    }
    assert all(flows.values()), flows
    names = [name for gateway_flows in flows.values() for name in gateway_flows]
    assert len(names) == len(set(names))  # the demo's table tells them apart by name
    assert flows["wechat_pay"] == ["WeChat Pay Native QR + notification"]


def test_secret_fields_come_from_the_settings_models() -> None:
    assert PLUGINS["mock"].secret_fields == ("webhook_secret", "previous_webhook_secrets")
    assert PLUGINS["stripe"].secret_fields == ("secret_key", "webhook_secret")
    assert PLUGINS["wechat_pay"].secret_fields == ("private_key", "apiv3_key")
    assert PLUGINS["alipay"].secret_fields == ("app_private_key",)


def test_only_the_mock_has_no_fake_server() -> None:
    assert [gateway_id for gateway_id, plugin in PLUGINS.items() if plugin.fake is None] == ["mock"]
    with pytest.raises(GatewayConfigError, match="'mock' has no fake provider server"):
        MOCK.start_fake()


def test_the_webhook_needs_say_how_each_provider_sends() -> None:
    formats = {
        gateway_id: PLUGINS[gateway_id].webhook.body_format for gateway_id in ("mock", "stripe", "alipay")
    }
    assert formats == {"mock": "json", "stripe": "json", "alipay": "form"}


def test_descriptors_import_no_provider_sdk_or_adapter() -> None:
    # In a fresh interpreter: this process has imported the adapters already.
    code = (
        "import sys; import activities.gateways.plugins; "
        "loaded = [m for m in sys.modules if m == 'stripe' or m.endswith(('.adapter', '.fake'))]; "
        "print(loaded)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_bad_import_path_is_a_configuration_error() -> None:
    plugin = GatewayPlugin(
        id="typo",
        settings="activities.gateways.mock.settings:NoSuchSettings",
        builder="activities.gateways.mock.adapter:build",
        webhook=WebhookNeeds(body_format="json", acknowledgement="200"),
    )
    with pytest.raises(GatewayConfigError, match="has no 'NoSuchSettings'"):
        plugin.settings_model()
    with pytest.raises(GatewayConfigError, match="is not a pydantic model"):
        GatewayPlugin(
            id="typo",
            settings="activities.gateways.mock.adapter:build",
            builder="activities.gateways.mock.adapter:build",
            webhook=plugin.webhook,
        ).settings_model()


@pytest.mark.parametrize("gateway_id", [g for g, p in PLUGINS.items() if p.fake is not None])
async def test_each_fake_configures_its_own_gateway(gateway_id: str) -> None:
    plugin = PLUGINS[gateway_id]
    async with plugin.start_fake() as fake:
        settings = plugin.settings_model().model_validate(fake.gateway_section())
        gateway = plugin.build(settings)
        try:
            assert gateway.id == gateway_id
            assert gateway.profile.currencies
        finally:
            await gateway.aclose()
