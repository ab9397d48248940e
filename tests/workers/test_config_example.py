"""The example configuration's gateway parts are what the gateway plugins generate."""

from __future__ import annotations

import tomllib

import pytest
from pydantic import BaseModel, ConfigDict, SecretStr

from activities.gateways.plugin import GatewayPlugin, WebhookNeeds
from activities.gateways.plugins import PLUGINS
from workers import config_example
from workers.config_example import EXAMPLE_TOML, ExampleError, generated_files, replace_generated


class Documented(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"merchant": "m-1", "key": "CHANGE-ME"}]})

    enabled: bool = False
    merchant: str
    key: SecretStr
    region: str | None = None


class Undocumented(BaseModel):
    merchant: str


def plugin(model: str) -> GatewayPlugin:
    return GatewayPlugin(
        id="newpay",
        settings=f"{__name__}:{model}",
        builder="activities.gateways.mock.adapter:build",
        webhook=WebhookNeeds(body_format="json", acknowledgement="200"),
    )


def test_the_committed_examples_are_what_the_plugins_generate() -> None:
    for path, text in generated_files().items():
        assert path.read_text() == text, f"{path} is stale: run `python -m workers.config_example`"


def test_every_plugin_has_its_section_and_no_secret_value_in_the_file() -> None:
    gateways = tomllib.loads(EXAMPLE_TOML.read_text())["payment"]
    assert [name for name in gateways if name in PLUGINS] == list(PLUGINS)
    for gateway_id, plugin_ in PLUGINS.items():
        assert not set(plugin_.secret_fields) & set(gateways[gateway_id]), gateway_id


def test_a_new_plugin_section_and_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config_example, "PLUGINS", {"newpay": plugin("Documented")})
    assert config_example.toml_sections().splitlines() == [
        "[payment.newpay]",
        "enabled = false",
        'merchant = "m-1"                   # example',
        "# region =                         # optional",
        "# secrets: from the environment or the secrets directory, never this file:",
        "#   payment__newpay__key",
    ]
    assert config_example.secret_entries() == 'payment__newpay__key: "CHANGE-ME"'


def test_a_required_key_without_an_example_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config_example, "PLUGINS", {"newpay": plugin("Undocumented")})
    with pytest.raises(ExampleError, match=r"\[payment.newpay\] merchant is required"):
        config_example.toml_sections()


def test_only_the_marked_region_is_replaced() -> None:
    text = f"a\n# {config_example.BEGIN}\nold\n# {config_example.END}\nb\n"
    assert replace_generated(text, "new\n\nx", "#") == (
        f"a\n# {config_example.BEGIN}\nnew\n\nx\n# {config_example.END}\nb\n"
    )
    with pytest.raises(ExampleError, match="marker lines"):
        replace_generated("a\n", "new", "#")
