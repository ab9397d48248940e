"""AliPay's demo flow, against its fake (activities/gateways/alipay/fake.py)."""

from __future__ import annotations

from activities.gateways.alipay import GATEWAY_ID
from activities.gateways.alipay.fake import FakeAlipay
from activities.gateways.demo_flow import DemoError, DemoFlow, DemoSteps, Payment, wallet


async def page(steps: DemoSteps, fake: FakeAlipay) -> Payment:
    payment = await steps.create_waiting(
        "alipay-page",
        "66.60",
        wallet(GATEWAY_ID, "page"),
        currency="CNY",
        gateway=GATEWAY_ID,
        return_url="https://shop.example/back",
    )
    # The customer's browser opens AliPay's cashier (which creates the trade) and pays; AliPay
    # tells us with a signed notification.
    status = await fake.open(payment["next_action"]["url"])
    if status != 200:
        raise DemoError(f"AliPay's cashier answered {status}")
    fake.pay(payment["id"])
    await steps.notify(GATEWAY_ID, fake.trade_notification(payment["id"]), 200)
    return await steps.settled(payment["id"])


FLOWS = (DemoFlow("AliPay page + notification", "paid captured 66.60", page),)
