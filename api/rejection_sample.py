"""A bounded sample of rejected webhooks for the inbox.

Every forged or mis-signed delivery would otherwise become an inbox row: a flood of them grows the
table without bound and costs a database write each. This `WebhookInbox` passes rejections through
at most `limit` per window per gateway (this instance's memory, as the flood limiter); verified
deliveries always pass. Wrapped by the metrics' counting inbox, so every rejection is still counted.
The store keeps only the newest rejected rows of each gateway (activities/store/repository.py)."""

from __future__ import annotations

from api.limits import RateLimit
from api.ports import WebhookInbox
from api.token_buckets import TokenBuckets
from workflows.webhook_inbox import WebhookOutcome


class RejectionSample:
    def __init__(self, inbox: WebhookInbox, limit: RateLimit) -> None:
        self._inbox = inbox
        self._buckets = TokenBuckets(limit)

    async def record(
        self,
        *,
        gateway: str,
        event_id: str,
        payment_id: str | None,
        verified: bool,
        outcome: WebhookOutcome,
        event_type: str,
    ) -> bool:
        if outcome is WebhookOutcome.REJECTED and not self._buckets.take(gateway)[0]:
            return True  # not sampled: a rejection is never a duplicate of anything
        return await self._inbox.record(
            gateway=gateway,
            event_id=event_id,
            payment_id=payment_id,
            verified=verified,
            outcome=outcome,
            event_type=event_type,
        )
