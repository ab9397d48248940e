"""The registry builds only enabled gateways from raw config sections through the plugin descriptors,
imports provider modules lazily, and fails with configuration errors that never echo a secret."""

from __future__ import annotations

import sys
from dataclasses import replace

import pytest
from pydantic import SecretStr

from activities.gateways import registry as registry_module
from activities.gateways.base import GatewayConfigError
from activities.gateways.mock import PLUGIN as MOCK
from activities.gateways.mock.adapter import MockGateway
from activities.gateways.mock.settings import MockSettings
from activities.gateways.plugin import GatewayPlugin, WebhookNeeds
from activities.gateways.registry import GatewayRegistry

SECRET = "whsec_registry_test_secret"


@pytest.fixture
def plugins(monkeypatch: pytest.MonkeyPatch) -> dict[str, GatewayPlugin]:
    """The registry's PLUGINS, restored after the test however it was extended."""
    table = dict(registry_module.PLUGINS)
    monkeypatch.setattr(registry_module, "PLUGINS", table)
    return table


def test_builds_enabled_sections_with_their_settings() -> None:
    registry = GatewayRegistry.from_config(
        {"mock": {"enabled": True, "currencies": ["usd", "jpy"], "webhook_secret": SECRET, "max_minor": 500}}
    )
    gateway = registry.get("mock")
    assert isinstance(gateway, MockGateway)
    assert gateway.settings.webhook_secret == SecretStr(SECRET)
    assert registry.ids() == ["mock"] and "mock" in registry
    profile = registry.profiles()["mock"]
    assert (profile.currencies, profile.max_minor) == (["USD", "JPY"], 500)


@pytest.mark.parametrize("enabled", [False, "false", "0", None])
def test_disabled_or_unmarked_sections_are_not_built(enabled: object) -> None:
    section = {} if enabled is None else {"enabled": enabled}
    registry = GatewayRegistry.from_config({"mock": section})
    assert registry.ids() == [] and registry.profiles() == {}


@pytest.mark.parametrize("enabled", [True, "true", "1", "yes"])
def test_enabled_accepts_environment_spellings(enabled: object) -> None:
    assert GatewayRegistry.from_config({"mock": {"enabled": enabled}}).ids() == ["mock"]


def test_enabled_must_be_a_boolean() -> None:
    with pytest.raises(GatewayConfigError, match=r"\[payment.mock\] enabled"):
        GatewayRegistry.from_config({"mock": {"enabled": "perhaps"}})
    with pytest.raises(GatewayConfigError, match=r"\[payment.mock\] must be a table"):
        GatewayRegistry.from_config({"mock": True})  # type: ignore[dict-item]


def test_unknown_gateway_fails_only_when_enabled() -> None:
    assert GatewayRegistry.from_config({"acmepay": {"enabled": False, "key": "x"}}).ids() == []
    with pytest.raises(GatewayConfigError, match=r"unknown gateway 'acmepay' \(known: .*mock"):
        GatewayRegistry.from_config({"acmepay": {"enabled": True}})


def test_invalid_settings_name_the_key_but_never_the_value() -> None:
    with pytest.raises(GatewayConfigError) as err:
        GatewayRegistry.from_config(
            {
                "mock": {
                    "enabled": True,
                    "webhook_secret": {"nested": SECRET},
                    "latency_ms": -1,
                    "typo_key": SECRET,
                }
            }
        )
    message = str(err.value)
    assert "[payment.mock]" in message
    assert "webhook_secret" in message and "latency_ms" in message and "typo_key" in message
    assert SECRET not in message
    assert err.value.__cause__ is None and err.value.__suppress_context__  # no ValidationError attached


def test_provider_modules_are_imported_lazily(plugins: dict[str, GatewayPlugin]) -> None:
    ghost = "activities.gateways.ghost_provider_that_does_not_exist"
    plugins["ghost"] = GatewayPlugin(
        id="ghost",
        settings=f"{ghost}:GhostSettings",
        builder=f"{ghost}:build",
        webhook=WebhookNeeds(body_format="json", acknowledgement="200"),
    )
    # Disabled: never imported, the others still build.
    registry = GatewayRegistry.from_config({"ghost": {"enabled": False}, "mock": {"enabled": True}})
    assert registry.ids() == ["mock"]
    assert "activities.gateways.ghost_provider_that_does_not_exist" not in sys.modules
    # Enabled: a clear configuration error naming the module.
    with pytest.raises(GatewayConfigError, match="ghost_provider_that_does_not_exist"):
        GatewayRegistry.from_config({"ghost": {"enabled": True}})


def test_a_plugin_must_build_the_gateway_it_names(plugins: dict[str, GatewayPlugin]) -> None:
    # The mock always calls itself "mock": a descriptor claiming another id is refused, so a
    # `[payment.<id>]` section can never end up serving another gateway's id.
    plugins["mock_eu"] = replace(MOCK, id="mock_eu")
    with pytest.raises(GatewayConfigError, match=r"built gateway 'mock' for \[payment.mock_eu\]"):
        GatewayRegistry.from_config({"mock_eu": {"enabled": True}})


def test_from_settings() -> None:
    registry = GatewayRegistry.from_settings({"mock": MockSettings(name="Offline")})
    assert registry.profiles()["mock"].name == "Offline"
    with pytest.raises(GatewayConfigError, match="unknown gateway"):
        GatewayRegistry.from_settings({"nope": MockSettings()})


def test_get_unknown_gateway_names_the_enabled_ones() -> None:
    registry = GatewayRegistry.from_config({"mock": {"enabled": True}})
    with pytest.raises(GatewayConfigError, match=r"'stripe' is not enabled \(enabled: mock\)"):
        registry.get("stripe")
    with pytest.raises(GatewayConfigError, match=r"enabled: none"):
        GatewayRegistry([]).get("mock")


class _Closing(MockGateway):
    def __init__(self, gateway_id: str, fail: bool, closed: list[str]) -> None:
        super().__init__(MockSettings())
        self._gateway_id, self._fail, self._closed = gateway_id, fail, closed

    @property
    def id(self) -> str:
        return self._gateway_id

    async def aclose(self) -> None:
        self._closed.append(self.id)
        if self._fail:
            raise RuntimeError("socket already gone")


async def test_aclose_closes_every_gateway_even_if_one_fails() -> None:
    closed: list[str] = []
    registry = GatewayRegistry([_Closing("a", True, closed), _Closing("b", False, closed)])
    async with registry:
        pass
    assert sorted(closed) == ["a", "b"]
