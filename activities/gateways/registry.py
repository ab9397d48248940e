"""Builds the enabled gateways from their configuration sections and hands them out by id.

Each provider module defines its own pydantic settings model and a `build(settings) -> Gateway`;
`FACTORIES` names them, one line per provider. Modules are imported only when their section is
enabled, so a provider whose optional dependency is missing breaks only itself, and only if used.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from activities.gateways.base import Gateway, GatewayConfigError
from workflows.domain import GatewayProfile

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GatewayFactory:
    """Where a provider's settings model and `build` function live, resolved on first use."""

    module: str
    settings: str  # the settings model's class name in `module`
    build: str = "build"

    def load(self) -> tuple[type[BaseModel], Callable[[Any], Gateway]]:
        try:
            module = importlib.import_module(self.module)
        except ImportError as exc:
            raise GatewayConfigError(f"cannot import {self.module}: {exc}") from exc
        return getattr(module, self.settings), getattr(module, self.build)


# Gateway id (the `[payment.<id>]` section) -> its factory. Add a provider with one line.
FACTORIES: dict[str, GatewayFactory] = {
    "mock": GatewayFactory("activities.gateways.mock", "MockSettings"),
    "stripe": GatewayFactory("activities.gateways.stripe", "StripeSettings"),
    "wechat_pay": GatewayFactory("activities.gateways.wechatpay", "WechatPaySettings"),
    "alipay": GatewayFactory("activities.gateways.alipay", "AlipaySettings"),
}

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
        return cls(_factory(gateway_id).load()[1](model) for gateway_id, model in settings.items())

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
            settings_model, build = _factory(gateway_id).load()
            try:
                settings = settings_model.model_validate(section)
            except ValidationError as exc:
                raise GatewayConfigError(f"[payment.{gateway_id}] is invalid: {_describe(exc)}") from None
            gateways.append(build(settings))
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


def _factory(gateway_id: str) -> GatewayFactory:
    try:
        return FACTORIES[gateway_id]
    except KeyError:
        known = ", ".join(sorted(FACTORIES))
        raise GatewayConfigError(f"unknown gateway {gateway_id!r} (known: {known})") from None


def _describe(exc: ValidationError) -> str:
    # Without the offending values: a mistyped secret must not end up in a log line.
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or '(section)'}: {error['msg']}"
        for error in exc.errors(include_input=False, include_url=False)
    )
