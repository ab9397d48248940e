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

FRAUD_SCREENING = Patch(
    id="fraud-screening",
    since=date(2026, 12, 6),
    why="after the rules, a screening service (Sift, Signifyd, Kount) is asked, a `review` decision "
    "holds the payment for an operator, and the service hears what became of the payment",
    kept_histories=None,
)

GATEWAY_ROUTING = Patch(
    id="gateway-routing",
    since=date(2026, 12, 6),
    why="a request that names no gateway is routed by the worker's rules and circuits (a local step) "
    "before anything else",
    kept_histories=None,
)

VERIFIED_GATEWAY_EVENTS = Patch(
    id="verified-gateway-events",
    since=date(2026, 12, 6),
    why=(
        "a webhook event moves money only with a valid proof (checked in a local step), otherwise it"
        " only makes the workflow ask the gateway; an event of another gateway or payment is refused"
    ),
    kept_histories="verified-gateway-events",
)

NOTIFIED_WAIT_ONE_LOOKUP = Patch(
    id="notified-wait-one-lookup",
    since=date(2026, 12, 6),
    why=(
        "a payment waiting on a customer action its gateway declares notified (webhook and the "
        "customer's return) asks the gateway once, halfway to the deadline, instead of polling"
    ),
    kept_histories="notified-wait-one-lookup",
)

ALL = (
    HOLD_REFUND_EVENTS_UNTIL_PAID,
    FEWER_LOCAL_STEPS,
    INDEX_PROVIDER_PAYMENT_ID,
    LONG_LIVED_PAYMENTS,
    FRAUD_SCREENING,
    GATEWAY_ROUTING,
    VERIFIED_GATEWAY_EVENTS,
    NOTIFIED_WAIT_ONE_LOOKUP,
)
