"""Builds the enabled gateways from their configuration sections and hands them out by id.

Each gateway's plugin descriptor (`activities.gateways.plugins.PLUGINS`) names its settings model and
its `build`; they are imported only when its section is enabled, so a provider whose optional
dependency is missing breaks only itself, and only if used.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from activities.gateways.base import Gateway, GatewayConfigError
from activities.gateways.plugin import GatewayPlugin
from activities.gateways.plugins import PLUGINS
from workflows.domain import GatewayProfile

logger = logging.getLogger(__name__)


_ENABLED = TypeAdapter(bool)  # "true" / "0" from the environment read as booleans


class GatewayRegistry:
    """The gateways this process talks to, by id. Shared by every activity and the webhook receiver."""

    def __init__(self, gateways: Iterable[Gateway]) -> None:
        self._gateways: dict[str, Gateway] = {}
        for gateway in gateways:
            if gateway.id in self._gateways:
                raise GatewayConfigError(f"two gateways claim the id {gateway.id!r}")
            self._gateways[gateway.id] = gateway

    @classmethod
    def from_settings(cls, settings: Mapping[str, BaseModel]) -> GatewayRegistry:
        """From already validated settings models, gateway id -> settings (tests, the dev stack)."""
        return cls(_plugin(gateway_id).build(model) for gateway_id, model in settings.items())

    @classmethod
    def from_config(cls, sections: Mapping[str, Mapping[str, Any]]) -> GatewayRegistry:
        """From raw `[payment.<gateway>]` sections. Only sections that say `enabled = true` are
        built: a provider holding live keys must never be switched on by a leftover section."""
        gateways: list[Gateway] = []
        for gateway_id, section in sections.items():
            if not isinstance(section, Mapping):
                raise GatewayConfigError(f"[payment.{gateway_id}] must be a table of settings")
            try:
                enabled = _ENABLED.validate_python(section.get("enabled", False))
            except ValidationError:
                raise GatewayConfigError(f"[payment.{gateway_id}] enabled must be true or false") from None
            if not enabled:
                continue
            plugin = _plugin(gateway_id)
            try:
                settings = plugin.settings_model().model_validate(section)
            except ValidationError as exc:
                raise GatewayConfigError(f"[payment.{gateway_id}] is invalid: {_describe(exc)}") from None
            gateways.append(plugin.build(settings))
        registry = cls(gateways)
        logger.info("gateways enabled: %s", ", ".join(registry.ids()) or "none")
        return registry

    def get(self, gateway_id: str) -> Gateway:
        try:
            return self._gateways[gateway_id]
        except KeyError:
            enabled = ", ".join(self.ids()) or "none"
            raise GatewayConfigError(f"gateway {gateway_id!r} is not enabled (enabled: {enabled})") from None

    def __contains__(self, gateway_id: object) -> bool:
        return gateway_id in self._gateways

    def ids(self) -> list[str]:
        return sorted(self._gateways)

    def profiles(self) -> dict[str, GatewayProfile]:
        return {gateway_id: self._gateways[gateway_id].profile for gateway_id in self.ids()}

    async def aclose(self) -> None:
        """Close every gateway's clients; one failing to close does not keep the others open."""
        results = await asyncio.gather(
            *(gateway.aclose() for gateway in self._gateways.values()), return_exceptions=True
        )
        for gateway_id, result in zip(self._gateways, results, strict=True):
            if isinstance(result, Exception):
                logger.warning("closing gateway %s failed: %s", gateway_id, type(result).__name__)

    async def __aenter__(self) -> GatewayRegistry:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def _plugin(gateway_id: str) -> GatewayPlugin:
    try:
        return PLUGINS[gateway_id]
    except KeyError:
        known = ", ".join(sorted(PLUGINS))
        raise GatewayConfigError(f"unknown gateway {gateway_id!r} (known: {known})") from None


def _describe(exc: ValidationError) -> str:
    # Without the offending values: a mistyped secret must not end up in a log line.
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or '(section)'}: {error['msg']}"
        for error in exc.errors(include_input=False, include_url=False)
    )
