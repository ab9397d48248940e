"""Every `workflow.patched(...)` id PaymentWorkflow uses, in one place (see docs/WORKFLOW_CHANGES.md).

A patch id is written into the history of each payment that reaches it, so an id is never renamed or
reused. docs/WORKFLOW_CHANGES.md lists these and tests/workflows/test_patches.py holds the list, the
docs and the committed histories to each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class Patch:
    id: str
    since: date
    why: str
    # Folder under tests/workflows/histories/ holding histories recorded before the patch (they
    # replay through its old branch); None when none were kept.
    kept_histories: str | None


FEWER_LOCAL_STEPS = Patch(
    id="fewer-local-steps",
    since=date(2026, 11, 27),
    why="independent local steps run side by side; `webhook.received` travels with the transition it causes",
    kept_histories="fewer-local-steps",
)

HOLD_REFUND_EVENTS_UNTIL_PAID = Patch(
    id="hold-refund-events-until-paid",
    since=date(2026, 11, 27),
    why="a refund notified before the payment's own success is held until it settles, not dropped",
    kept_histories=None,
)

INDEX_PROVIDER_PAYMENT_ID = Patch(
    id="index-provider-payment-id",
    since=date(2026, 12, 6),
    why="the ProviderPaymentId search attribute is upserted once the provider's payment id is known",
    kept_histories=None,
)

LONG_LIVED_PAYMENTS = Patch(
    id="long-lived-payments",
    since=date(2026, 12, 6),
    why=(
        "a settled payment lives for its gateway's window (default 365 days), continuing as new at "
        "each settlement period or when its history grows, instead of closing after 30 days"
    ),
    kept_histories="long-lived-payments",
)

ALL = (HOLD_REFUND_EVENTS_UNTIL_PAID, FEWER_LOCAL_STEPS, INDEX_PROVIDER_PAYMENT_ID, LONG_LIVED_PAYMENTS)
