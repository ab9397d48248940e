"""When a payment waiting for its customer (3-D Secure, a redirect, a QR code, a bank transfer) asks
the gateway about it, without being told: the timers of `PaymentWorkflow._await_customer`.

Each check is a timer, a workflow task, a lookup activity and another workflow task, and once the
worker's cache is full a replay of the payment's history: a cost every waiting payment pays for as
long as it waits, whoever else is waiting or starting.

- Polled (the default): first after `status_poll_seconds`, then doubling up to `MAX_POLL_INTERVAL`,
  until the deadline. For actions whose outcome nobody tells us: a QR code scanned on another
  device (nobody comes back), a provider that notifies only successes (WeChat Pay), an approval
  that our own call finishes (PayPal).
- Notified (the action is in the gateway's `GatewayProfile.notified_actions`): one check, halfway
  to the deadline. The outcome reaches the payment on two independent paths, the provider's
  webhook (retried by the provider for hours, recorded by our receiver before it is acknowledged)
  and the customer's return (`action_completed`, which makes the workflow ask the gateway); either
  alone settles it. No single fault leaves it stuck: with both lost (the webhook lost and the
  customer gone), the halfway check asks the gateway and applies its answer; and whatever happens
  after it, the void at the deadline asks again (`PaymentWorkflow._void`: a cancel the gateway
  refuses is followed by a lookup, and a paid or just-authorized answer wins over the timeout,
  `PaymentState.apply_void_result`). The check comes well before the void so that a payment the
  customer finished is confirmed as paid, not first sent a cancel that only the gateway's refusal
  turns back. A lookup that fails is retried by its activity (`GATEWAY_LOOKUP`), as a poll's is.
"""

from __future__ import annotations

from datetime import datetime, timedelta

MAX_POLL_INTERVAL = timedelta(minutes=10)
# A notified wait's check that fell due while the workflow was busy with a message runs this soon
# after, not never (a timer needs a duration).
_OVERDUE_CHECK = timedelta(seconds=1)


class CustomerWait:
    """The schedule of one wait: how long each timer runs, and what an expired one means."""

    def __init__(self, start: datetime, timeout: timedelta, first_poll: timedelta, *, notified: bool) -> None:
        self.deadline = start + timeout
        self._poll = first_poll
        self._check_at: datetime | None = start + timeout / 2 if notified else None

    def timer(self, now: datetime) -> timedelta:
        """How long to wait for news from `now` before asking the gateway (at most to the deadline)."""
        remaining = self.deadline - now
        if self._check_at is None:
            return min(self._poll, remaining)
        return min(max(self._check_at - now, _OVERDUE_CHECK), remaining)

    def asked(self) -> None:
        """A timer ran out before the deadline and the gateway is being asked: move to the next one."""
        if self._check_at is None:
            self._poll = min(self._poll * 2, MAX_POLL_INTERVAL)
        else:
            self._check_at = self.deadline  # checked once; the deadline's void asks again
