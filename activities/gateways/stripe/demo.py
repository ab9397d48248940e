"""Stripe's demo flows, against its fake (activities/gateways/stripe/fake.py)."""

from __future__ import annotations

import httpx

from activities.gateways.demo_flow import DemoError, DemoFlow, DemoSteps, Payment, card, summary
from activities.gateways.stripe import GATEWAY_ID
from activities.gateways.stripe.fake import FakeStripe


async def card_success(steps: DemoSteps, fake: FakeStripe) -> Payment:
    return await steps.create("stripe-card", "25.00", card("pm_card_visa"), gateway=GATEWAY_ID)


async def three_ds_completed(steps: DemoSteps, fake: FakeStripe) -> Payment:
    payment = await steps.create(
        "stripe-3ds",
        "140.00",
        card("pm_card_threeDSecure2Required"),
        gateway=GATEWAY_ID,
        return_url="https://shop.example/return",
    )
    action = payment.get("next_action") or {}
    if payment["status"] != "authorizing" or action.get("type") != "redirect_to_url":
        raise DemoError(f"expected a 3-D Secure redirect, got {summary(payment)}")
    # The customer's browser passes the challenge on Stripe's page, which sends it back to the shop
    # (not followed: the shop is not running here) with the intent's outcome in the query.
    challenge = await steps.http.get(action["url"])
    if challenge.status_code != 302:
        raise DemoError(f"the 3-D Secure page answered {challenge.status_code}: {challenge.text[:200]}")
    back = httpx.URL(challenge.headers["location"]).params
    payment = await steps.post(
        f"/v1/payments/{payment['id']}/actions/complete",
        "stripe-3ds-complete",
        {"data": {"payment_intent": back["payment_intent"], "redirect_status": back["redirect_status"]}},
        (200, 202),
    )
    return await steps.settled(payment["id"])


FLOWS = (
    DemoFlow("Stripe card success", "paid captured 25.00", card_success),
    DemoFlow("Stripe 3-D Secure completed", "paid captured 140.00", three_ds_completed),
)
