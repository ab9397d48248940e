"""WeChat Pay's demo flow, against its fake (activities/gateways/wechat_pay/fake.py)."""

from __future__ import annotations

from activities.gateways.demo_flow import DemoFlow, DemoSteps, Payment, wallet
from activities.gateways.wechat_pay import GATEWAY_ID
from activities.gateways.wechat_pay.fake import FakeWechatPay


async def native_qr(steps: DemoSteps, fake: FakeWechatPay) -> Payment:
    payment = await steps.create_waiting(
        "wechat-native", "88.88", wallet(GATEWAY_ID, "native"), currency="CNY", gateway=GATEWAY_ID
    )
    # The customer scans the QR code and pays; WeChat Pay tells us with a signed, encrypted notification.
    fake.pay(payment["id"])
    await steps.notify(GATEWAY_ID, fake.payment_notification(payment["id"]), 204)
    return await steps.settled(payment["id"])


FLOWS = (DemoFlow("WeChat Pay Native QR + notification", "paid captured 88.88", native_qr),)
