"""The demo's manual review flow: a payment the fraud rules hold for review, approved by the operator
through `POST /v1/payments/{id}/review`, then captured.

The demo lowers `review_threshold` so that a card whose issuing country differs from the customer's
IP country (20 points) is held, while the demo's `risk_threshold` (50) still blocks the large
cross-border payment of the "fraud block" flow.
"""

from __future__ import annotations

from typing import Any

from activities.gateways.demo_flow import DemoError, DemoFlow, DemoSteps, Payment, card

DEMO_REVIEW_THRESHOLD = 20


def review_defaults() -> dict[str, Any]:
    return {"fraud_detection": {"review_threshold": DEMO_REVIEW_THRESHOLD}}


async def review_approved(steps: DemoSteps, provider: Any) -> Payment:
    held = await steps.create(
        "review", "30.00", card("tok_visa", country="US"), metadata={"ip_country": "GB"}
    )
    if held["status"] != "requires_review":
        raise DemoError(f"expected the payment held for review, got {held['status']}")
    return await steps.post(
        f"/v1/payments/{held['id']}/review",
        "review-approve",
        {"decision": "approve", "note": "demo: the operator called the customer"},
        (200,),
    )


FLOWS = [DemoFlow("review approved by the operator", "paid captured 30.00", review_approved)]
