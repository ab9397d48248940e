"""Braintree's demo flows, against its fake (activities/gateways/braintree/fake.py)."""

from __future__ import annotations

from activities.gateways.braintree import GATEWAY_ID
from activities.gateways.braintree.fake import FakeBraintree
from activities.gateways.demo_flow import DemoError, DemoFlow, DemoSteps, Payment, card, summary


async def sale_settled(steps: DemoSteps, fake: FakeBraintree) -> Payment:
    """A sale from a Drop-in nonce; Braintree settles it and says so with a signed notification."""
    payment = await steps.create("braintree-sale", "30.00", card("fake-valid-nonce"), gateway=GATEWAY_ID)
    if payment["status"] != "paid":
        raise DemoError(f"expected the sale paid, got {summary(payment)}")
    fake.settle(payment["provider_payment_id"])
    await steps.notify(GATEWAY_ID, fake.emitted("transaction_settled", payment["provider_payment_id"]), 200)
    return await steps.settled(payment["id"])


async def partial_capture(steps: DemoSteps, fake: FakeBraintree) -> Payment:
    """Authorized, then part of it submitted for settlement (the rest of the hold is released)."""
    payment = await steps.create(
        "braintree-auth", "80.00", card("fake-valid-nonce"), gateway=GATEWAY_ID, capture_method="manual"
    )
    if payment["status"] != "authorized":
        raise DemoError(f"expected an authorization, got {summary(payment)}")
    return await steps.post(
        f"/v1/payments/{payment['id']}/capture", "braintree-capture", {"amount": "50.00"}, (200,)
    )


FLOWS = (
    DemoFlow("Braintree sale + settlement notification", "paid captured 30.00", sale_settled),
    DemoFlow("Braintree partial capture", "paid captured 50.00", partial_capture),
)
