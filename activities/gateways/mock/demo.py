"""The mock gateway's demo flows: test tokens drive the outcome (activities/gateways/mock/adapter.py)."""

from __future__ import annotations

from activities.gateways.demo_flow import DemoError, DemoFlow, DemoSteps, Payment, card, summary
from activities.gateways.mock.adapter import MockGateway


async def instant_success(steps: DemoSteps, mock: MockGateway) -> Payment:
    return await steps.create("instant", "49.99", card("tok_visa"))


async def decline(steps: DemoSteps, mock: MockGateway) -> Payment:
    return await steps.create("decline", "12.00", card("tok_chargeDeclined"))


async def fraud_block(steps: DemoSteps, mock: MockGateway) -> Payment:
    # A large amount from a card whose country differs from the customer's IP country.
    return await steps.create(
        "fraud", "2500.00", card("tok_visa", country="US"), metadata={"ip_country": "NG"}
    )


async def three_ds_completed(steps: DemoSteps, mock: MockGateway) -> Payment:
    payment = await steps.create(
        "3ds", "120.00", card("tok_threeDSecure2Required"), return_url="https://shop.example/return"
    )
    if payment["status"] != "authorizing" or not payment.get("next_action"):
        raise DemoError(f"expected a 3-D Secure challenge, got {summary(payment)}")
    # The customer is back from the challenge page: the merchant tells us, the workflow asks
    # the gateway what really happened.
    payment = await steps.post(
        f"/v1/payments/{payment['id']}/actions/complete",
        "3ds-complete",
        {"data": {"three_ds_result": "authenticated"}},
        (200, 202),
    )
    return await steps.settled(payment["id"])


async def three_ds_timeout(steps: DemoSteps, mock: MockGateway) -> Payment:
    payment = await steps.create("3ds-timeout", "75.00", card("tok_threeDSecure2Required"))
    if payment["status"] != "authorizing":
        raise DemoError(f"expected a 3-D Secure challenge, got {summary(payment)}")
    # Nobody completes it: the workflow gives up after payment.action_timeout_seconds.
    return await steps.settled(payment["id"], steps.action_timeout_seconds + 30)


async def manual_partial_capture(steps: DemoSteps, mock: MockGateway) -> Payment:
    payment = await steps.create("capture", "100.00", card("tok_visa"), capture_method="manual")
    if payment["status"] != "authorized":
        raise DemoError(f"expected an authorization, got {summary(payment)}")
    return await steps.post(
        f"/v1/payments/{payment['id']}/capture", "capture-60", {"amount": "60.00"}, (200,)
    )


async def partial_refunds(steps: DemoSteps, mock: MockGateway) -> Payment:
    payment = await steps.create("refunds", "80.00", card("tok_visa"))
    if payment["status"] != "paid":
        raise DemoError(f"expected a paid payment, got {summary(payment)}")
    for amount in ("30.00", "20.00"):
        await steps.post(
            f"/v1/payments/{payment['id']}/refunds", f"refund-{amount}", {"amount": amount}, (201, 202)
        )
    return await steps.wait(payment["id"], lambda p: p["refunded_amount"] == "50.00", 30)


async def webhook_completion(steps: DemoSteps, mock: MockGateway) -> Payment:
    payment = await steps.create("webhook", "33.00", card("tok_async_webhook"))
    if payment["status"] != "authorizing":
        raise DemoError(f"expected a payment waiting on the provider, got {summary(payment)}")
    # The provider settles it later and tells us with a signed webhook.
    event = mock.settle(payment["id"])
    response = await mock.send_webhook(event, url=steps.webhook_url("mock"))
    if response.status_code != 200:
        raise DemoError(f"the webhook was answered {response.status_code}: {response.text[:200]}")
    return await steps.settled(payment["id"])


FLOWS = (
    DemoFlow("instant success", "paid captured 49.99", instant_success),
    DemoFlow("decline", "failed (card_declined)", decline),
    DemoFlow("fraud block", "failed (blocked_by_fraud_check)", fraud_block),
    DemoFlow("3-D Secure completed", "paid captured 120.00", three_ds_completed),
    DemoFlow("3-D Secure timeout", "cancelled (action_timeout)", three_ds_timeout),
    DemoFlow("manual partial capture", "paid captured 60.00", manual_partial_capture),
    DemoFlow("partial refunds", "partially_refunded captured 80.00 refunded 50.00", partial_refunds),
    DemoFlow("webhook completion", "paid captured 33.00", webhook_completion),
)
