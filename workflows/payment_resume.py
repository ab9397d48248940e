"""A payment's later runs: how much a continue-as-new carries, and the input of a run started on
demand, from the store's projection, when a payment whose workflow has closed gets a refund or a
late provider event (see docs/ARCHITECTURE.md, "Long-lived payments")."""

from __future__ import annotations

from workflows.domain import GatewayProfile, PaymentInput, PaymentResume, PaymentSettings, PaymentView

# Provider event ids a run remembers (most recent last) to apply each delivery once. Providers
# retry for days, not months: older ids are dropped so the carried state stays small.
SEEN_EVENT_IDS_KEPT = 1000


def reopening(view: PaymentView, gateway: GatewayProfile, settings: PaymentSettings) -> PaymentInput:
    """The input and state of a run started for a closed payment, from its stored projection. It
    resumes in the settlement phase: nothing in it can authorize or capture again. The original
    request's fingerprint is not stored: a replay of the create call during such a run is answered
    from the view (see `PaymentState.decide_refusal`)."""
    return PaymentInput(
        payment_id=view.id,
        order_id=view.order_id,
        gateway=gateway,
        amount=view.amount,
        method=view.method,
        capture_method=view.capture_method,
        customer_id=view.customer_id,
        customer_ip=view.customer_ip,
        merchant_id=view.merchant_id,
        metadata=view.metadata,
        request_fingerprint="",
        settings=settings,
        resume=PaymentResume(view=view, reopened=True),
    )
