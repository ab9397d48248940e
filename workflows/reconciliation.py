"""The workflow a Temporal Schedule starts to reconcile the last window of payments.

I/O-free: it turns the schedule's window into a time range (from the workflow's own clock, so a
replay computes the same range) and runs the reconciliation activity once.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from workflows import activity_names as act
    from workflows.activity_options import ActivityOptions
    from workflows.reconcile_io import ReconcileReport, ReconcileRequest, ReconcileWindow

# One walk can take a while on a large window (one lookup per payment); the activity heartbeats per
# page, and a retry walks again from the start, which is safe: lookups only read, and the events it
# signals carry deterministic ids the workflows de-duplicate.
RECONCILE_CALL = ActivityOptions(
    start_to_close_timeout=timedelta(hours=1),
    heartbeat_timeout=timedelta(minutes=2),
    retry_policy=RetryPolicy(initial_interval=timedelta(seconds=10), maximum_attempts=3),
)


@workflow.defn
class ReconciliationWorkflow:
    @workflow.run
    async def run(self, window: ReconcileWindow) -> ReconcileReport:
        until = workflow.now()
        request = ReconcileRequest(
            since=until - timedelta(seconds=window.window_seconds),
            until=until,
            repair=window.repair,
            grace_seconds=window.grace_seconds,
        )
        report: ReconcileReport = await workflow.execute_activity(
            act.RECONCILE,
            request,
            result_type=ReconcileReport,
            summary="reconcile",
            **RECONCILE_CALL,
        )
        return report
