"""What the webhook receiver did with one provider notification: the inbox's vocabulary.

Here, and not in api/ or activities/, because both speak it: the receiver decides the outcome
(api/webhooks.py), the store keeps it (activities/store)."""

from __future__ import annotations

from enum import StrEnum


class WebhookOutcome(StrEnum):
    SIGNALLED = "signalled"  # Temporal accepted the signal to the payment's workflow
    # Verified, but no running payment of ours: acknowledged all the same, so the provider stops.
    UNKNOWN_PAYMENT = "unknown_payment"
    REJECTED = "rejected"  # signature, timestamp or shape did not check out: nothing signalled
