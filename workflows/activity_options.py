"""How long the payment's activities may take and how they are retried, as typed keyword sets for
`workflow.execute_activity` / `workflow.execute_local_activity` (`**GATEWAY_CALL`)."""

from __future__ import annotations

from datetime import timedelta
from typing import TypedDict

from temporalio.common import RetryPolicy


class ActivityOptions(TypedDict, total=False):
    start_to_close_timeout: timedelta
    schedule_to_close_timeout: timedelta
    heartbeat_timeout: timedelta
    retry_policy: RetryPolicy


class LocalActivityOptions(TypedDict, total=False):
    start_to_close_timeout: timedelta
    retry_policy: RetryPolicy


# Local steps (store, order ledger, fraud rules) are short and idempotent: run them as local
# activities, retried until the database answers, without extra history events per attempt.
LOCAL_STEP = LocalActivityOptions(
    start_to_close_timeout=timedelta(seconds=10),
    retry_policy=RetryPolicy(
        initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=10)
    ),
)

# A gateway call: retried with the same idempotency key while the provider is unreachable, rate
# limits or answers 5xx. When retries run out the outcome is *unknown*, not failed, and a lookup
# decides; two minutes bounds how long a provider that replays a saved 500 for our key can hold a
# payment before we ask it instead. The activity heartbeats, so a worker that dies mid-call is
# noticed in seconds.
GATEWAY_CALL = ActivityOptions(
    start_to_close_timeout=timedelta(seconds=30),
    schedule_to_close_timeout=timedelta(minutes=2),
    heartbeat_timeout=timedelta(seconds=10),
    retry_policy=RetryPolicy(
        initial_interval=timedelta(milliseconds=500),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=10),
    ),
)

# Asking the gateway what happened never gives up: it is how an unknown outcome gets resolved.
GATEWAY_LOOKUP = ActivityOptions(
    start_to_close_timeout=timedelta(seconds=30),
    heartbeat_timeout=timedelta(seconds=10),
    retry_policy=RetryPolicy(
        initial_interval=timedelta(seconds=1),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(minutes=2),
    ),
)

# A fraud screening service: asked before any money moves, so its budget is short. When it stays
# unreachable the payment does not wait: the policy's `on_provider_error` decides (see
# workflows/payment.py).
FRAUD_SCREENING = ActivityOptions(
    start_to_close_timeout=timedelta(seconds=4),
    schedule_to_close_timeout=timedelta(seconds=10),
    retry_policy=RetryPolicy(
        initial_interval=timedelta(milliseconds=500),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=4),
    ),
)

# Telling a screening service what became of a payment trains its model; nothing waits on it. It is
# retried for a day, then given up (the service's console still shows the order).
FRAUD_FEEDBACK = ActivityOptions(
    start_to_close_timeout=timedelta(seconds=15),
    schedule_to_close_timeout=timedelta(days=1),
    retry_policy=RetryPolicy(
        initial_interval=timedelta(seconds=2),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(minutes=30),
    ),
)
