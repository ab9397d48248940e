"""The fake providers for `durapay dev` and `durapay demo`: started in-process on ephemeral
127.0.0.1 ports, with the `[payment.stripe]`, `[payment.wechat_pay]` and `[payment.alipay]` sections
pointed at them, so every provider's flows run on one machine without accounts or the internet.

A gateway the user configured (any `[payment.<gateway>]` section, from a file, the environment or
secrets) is theirs: it is never faked, so a real configuration is never overridden.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from activities.gateways.alipay import GATEWAY_ID as ALIPAY
from activities.gateways.alipay.fake import FakeAlipay
from activities.gateways.stripe import GATEWAY_ID as STRIPE
from activities.gateways.stripe.fake import FakeStripe
from activities.gateways.wechat_pay import GATEWAY_ID as WECHAT_PAY
from activities.gateways.wechat_pay.fake import FakeWechatPay
from workers.config import DurapayConfig


@dataclass(frozen=True)
class FakeProviders:
    """The fakes running for this process; None for a gateway left to the user's configuration."""

    stripe: FakeStripe | None = None
    wechat_pay: FakeWechatPay | None = None
    alipay: FakeAlipay | None = None

    def sections(self) -> dict[str, dict[str, Any]]:
        """`[payment.<gateway>]` sections for the running fakes."""
        sections: dict[str, dict[str, Any]] = {}
        if self.stripe is not None:
            sections[STRIPE] = self.stripe.gateway_section()
        if self.wechat_pay is not None:
            sections[WECHAT_PAY] = self.wechat_pay.gateway_section()
        if self.alipay is not None:
            sections[ALIPAY] = self.alipay.gateway_section()
        return sections

    def deliver_webhooks_to(self, webhook_base_url: str) -> None:
        """Stripe's fake sends its events by itself (as Stripe does); it needs the receiver's URL,
        known only once the API listens. WeChat Pay and AliPay notifications are sent by the demo."""
        if self.stripe is not None:
            self.stripe.webhook_url = f"{webhook_base_url}/{STRIPE}"

    def describe(self) -> list[str]:
        """One line per running fake, for the banner."""
        urls = {
            STRIPE: self.stripe.url if self.stripe else None,
            WECHAT_PAY: self.wechat_pay.base_url if self.wechat_pay else None,
            ALIPAY: self.alipay.gateway_url if self.alipay else None,
        }
        return [f"{gateway} (fake) at {url}" for gateway, url in urls.items() if url]


def user_configured(config: DurapayConfig, gateway_id: str) -> bool:
    return gateway_id in config.payment.gateways


@asynccontextmanager
async def running_fake_providers(config: DurapayConfig) -> AsyncIterator[tuple[DurapayConfig, FakeProviders]]:
    """Start a fake for every fakeable gateway the user did not configure; yield the config with
    those gateways' sections pointing at the fakes, and the fakes. Stops them on exit."""
    async with AsyncExitStack() as stack:
        stripe = wechat_pay = alipay = None
        if not user_configured(config, STRIPE):
            stripe = await stack.enter_async_context(FakeStripe())
        if not user_configured(config, WECHAT_PAY):
            wechat_pay = await stack.enter_async_context(FakeWechatPay())
        if not user_configured(config, ALIPAY):
            alipay = await stack.enter_async_context(FakeAlipay())
        fakes = FakeProviders(stripe=stripe, wechat_pay=wechat_pay, alipay=alipay)
        gateways = {**config.payment.gateways, **fakes.sections()}
        payment = config.payment.model_copy(update={"gateways": gateways})
        yield config.model_copy(update={"payment": payment}), fakes
