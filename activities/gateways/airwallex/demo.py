"""Airwallex's demo flows, against its fake (activities/gateways/airwallex/fake.py)."""

from __future__ import annotations

import httpx

from activities.gateways.airwallex import GATEWAY_ID
from activities.gateways.airwallex.fake import CARD_3DS, CARD_SUCCESS, FakeAirwallex
from activities.gateways.demo_flow import DemoError, DemoFlow, DemoSteps, Payment, card, summary


async def card_success(steps: DemoSteps, fake: FakeAirwallex) -> Payment:
    return await steps.create("airwallex-card", "32.50", card(CARD_SUCCESS), gateway=GATEWAY_ID)


async def three_ds_completed(steps: DemoSteps, fake: FakeAirwallex) -> Payment:
    payment = await steps.create(
        "airwallex-3ds",
        "120.00",
        card(CARD_3DS),
        gateway=GATEWAY_ID,
        return_url="https://shop.example/return",
    )
    action = payment.get("next_action") or {}
    if payment["status"] != "authorizing" or action.get("type") != "redirect_to_url":
        raise DemoError(f"expected a 3-D Secure redirect, got {summary(payment)}")
    # The customer's browser passes the challenge on the issuer's page, which sends it back to the
    # shop (not followed: the shop is not running here) naming the Payment Intent.
    challenge = await steps.http.get(action["url"])
    if challenge.status_code != 302:
        raise DemoError(f"the 3-D Secure page answered {challenge.status_code}: {challenge.text[:200]}")
    back = httpx.URL(challenge.headers["location"]).params
    payment = await steps.post(
        f"/v1/payments/{payment['id']}/actions/complete",
        "airwallex-3ds-complete",
        {"data": {"payment_intent_id": back["payment_intent_id"]}},
        (200, 202),
    )
    return await steps.settled(payment["id"])


FLOWS = (
    DemoFlow("Airwallex card success", "paid captured 32.50", card_success),
    DemoFlow("Airwallex 3-D Secure completed", "paid captured 120.00", three_ds_completed),
)
