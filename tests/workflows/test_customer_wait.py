"""The schedule of a customer wait (workflows/customer_wait.py), without a server: when each timer
of a polled and of a notified wait runs out. The workflow's use of it is in test_payment_timers.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from workflows.customer_wait import CustomerWait

START = datetime(2026, 12, 6, tzinfo=UTC)
S = timedelta(seconds=1)


def _checks(wait: CustomerWait) -> list[int]:
    """The seconds after the start at which the gateway is asked, with no news meanwhile."""
    now, asked = START, []
    while True:
        now += wait.timer(now)
        if now >= wait.deadline:
            return asked
        asked.append(int((now - START) / S))
        wait.asked()


def test_polled_wait_backs_off_to_ten_minutes():
    wait = CustomerWait(START, timedelta(hours=1), 30 * S, notified=False)
    assert _checks(wait) == [30, 90, 210, 450, 930, 1530, 2130, 2730, 3330]


def test_notified_wait_asks_once_halfway():
    assert _checks(CustomerWait(START, 900 * S, 30 * S, notified=True)) == [450]
    # A bank transfer's three days: still one check.
    assert _checks(CustomerWait(START, timedelta(days=3), 30 * S, notified=True)) == [36 * 3600]


def test_notified_wait_restarted_by_a_message_keeps_its_check_time():
    wait = CustomerWait(START, 900 * S, 30 * S, notified=True)
    # A message woke the wait at 100 s (a webhook that changed nothing): the next timer still ends
    # at 450 s; one that fell due while the workflow was busy runs at once, not never.
    assert wait.timer(START + 100 * S) == 350 * S
    assert wait.timer(START + 451 * S) == S
    wait.asked()
    assert wait.timer(START + 460 * S) == 440 * S  # then only the deadline
