"""The fake providers for `durapay dev` and `durapay demo`: the fake of every gateway plugin that has
one (activities/gateways/plugins.py), started in-process on an ephemeral 127.0.0.1 port, with the
gateway's `[payment.<id>]` section pointed at it, so every provider's flows run on one machine
without accounts or the internet.

A gateway the user configured (any `[payment.<gateway>]` section, from a file, the environment or
secrets) is theirs: it is never faked, so a real configuration is never overridden.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from activities.gateways.plugin import FakeProvider, PushesWebhooks
from activities.gateways.plugins import PLUGINS
from workers.config import DurapayConfig


@dataclass(frozen=True)
class FakeProviders:
    """The fakes running for this process, by gateway id (in PLUGINS order); a gateway left to the
    user's configuration has none."""

    running: Mapping[str, FakeProvider] = field(default_factory=dict)

    def sections(self) -> dict[str, dict[str, Any]]:
        """`[payment.<gateway>]` sections for the running fakes."""
        return {gateway: fake.gateway_section() for gateway, fake in self.running.items()}

    def deliver_webhooks_to(self, webhook_base_url: str) -> None:
        """Tell the fakes that send their notifications by themselves where our receiver is."""
        for gateway, fake in self.running.items():
            if isinstance(fake, PushesWebhooks):
                fake.deliver_webhooks_to(f"{webhook_base_url}/{gateway}")

    def describe(self) -> list[str]:
        """One line per running fake, for the banner."""
        return [f"{gateway} (fake) at {fake.url}" for gateway, fake in self.running.items()]


def user_configured(config: DurapayConfig, gateway_id: str) -> bool:
    return gateway_id in config.payment.gateways


@asynccontextmanager
async def running_fake_providers(config: DurapayConfig) -> AsyncIterator[tuple[DurapayConfig, FakeProviders]]:
    """Start a fake for every fakeable gateway the user did not configure; yield the config with
    those gateways' sections pointing at the fakes, and the fakes. Stops them on exit."""
    async with AsyncExitStack() as stack:
        running = {
            plugin.id: await stack.enter_async_context(plugin.start_fake())
            for plugin in PLUGINS.values()
            if plugin.fake is not None and not user_configured(config, plugin.id)
        }
        fakes = FakeProviders(running)
        gateways = {**config.payment.gateways, **fakes.sections()}
        payment = config.payment.model_copy(update={"gateways": gateways})
        yield config.model_copy(update={"payment": payment}), fakes
