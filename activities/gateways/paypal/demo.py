"""PayPal's demo flow, against its fake (activities/gateways/paypal/fake.py): the payer approves on
PayPal's page like a browser would, comes back to the shop, and the shop reports it."""

from __future__ import annotations

from activities.gateways.demo_flow import DemoError, DemoFlow, DemoSteps, Payment, summary
from activities.gateways.paypal import GATEWAY_ID
from activities.gateways.paypal.fake import FakePayPal


async def approval_completed(steps: DemoSteps, fake: FakePayPal) -> Payment:
    payment = await steps.create_waiting(
        "paypal-approval",
        "42.50",
        {"type": "wallet", "wallet": "paypal"},
        gateway=GATEWAY_ID,
        return_url="https://shop.example/return",
    )
    action = payment.get("next_action") or {}
    if action.get("type") != "redirect_to_url" or not action.get("url"):
        raise DemoError(f"expected PayPal's approval link, got {summary(payment)}")
    # The payer's browser opens the approval page and approves; PayPal sends it back to the shop
    # (not followed: the shop is not running here) with the order id and the payer id.
    page = await steps.http.get(action["url"], follow_redirects=False)
    if page.status_code != 302:
        raise DemoError(f"PayPal's approval page answered {page.status_code}: {page.text[:200]}")
    back = dict(page.next_request.url.params) if page.next_request else {}
    payment = await steps.post(
        f"/v1/payments/{payment['id']}/actions/complete",
        "paypal-approval-complete",
        {"data": {"token": back.get("token", ""), "PayerID": back.get("PayerID", "")}},
        (200, 202),
    )
    return await steps.settled(payment["id"])


FLOWS = (DemoFlow("PayPal approval completed", "paid captured 42.50", approval_completed),)
