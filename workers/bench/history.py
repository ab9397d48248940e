"""What a payment's history says about where its time went: the server's event timestamps split the
wall time into waiting for a worker (task dispatch), the worker's own work, and the rest."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client

from workers.bench import capacity

SAMPLES = 3
# Indices of the probe payments: far beyond what a time-bounded sweep reaches, so ids never collide.
PROBE_FIRST_INDEX = 1_000_000


async def probe(op: Callable[[int], Awaitable[object]]) -> list[int]:
    """Run `SAMPLES` payments one at a time on the warm worker once the load is over: their
    histories show what one payment costs and where its time goes, without queueing in it (the
    sweep's own first payments would also carry the worker's cold start)."""
    indices = [PROBE_FIRST_INDEX + i for i in range(SAMPLES)]
    for index in indices:
        await op(index)
    return indices


def breakdown(events: Sequence[HistoryEvent]) -> dict[str, float]:
    """Milliseconds, summed over the workflow's tasks:

    - `workflow_task_wait`: scheduled -> started, the server getting a workflow task to a worker
      (where the dev server's transfer-queue rate limit shows up);
    - `workflow_task_work`: started -> completed, the worker running workflow code (local
      activities included) and answering;
    - `activity_wait` / `activity_work`: the same for regular activities;
    - `total`: first to last event; `other` is what the four do not cover.
    """
    times = {event.event_id: event.event_time.ToMilliseconds() for event in events}
    parts = dict.fromkeys(("workflow_task_wait", "workflow_task_work", "activity_wait", "activity_work"), 0.0)
    for event in events:
        at = times[event.event_id]
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            parts["workflow_task_wait"] += (
                at - times[event.workflow_task_started_event_attributes.scheduled_event_id]
            )
        elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            parts["workflow_task_work"] += (
                at - times[event.workflow_task_completed_event_attributes.started_event_id]
            )
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            parts["activity_wait"] += (
                at - times[event.activity_task_started_event_attributes.scheduled_event_id]
            )
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            parts["activity_work"] += (
                at - times[event.activity_task_completed_event_attributes.started_event_id]
            )
    total = float(times[events[-1].event_id] - times[events[0].event_id]) if events else 0.0
    return {**parts, "other": total - sum(parts.values()), "total": total}


async def sample(client: Client, workflow_ids: Iterable[str]) -> dict[str, Any] | None:
    """Event count, time breakdown and Temporal actions, averaged over a few workflows."""
    histories = [(await client.get_workflow_handle(wid).fetch_history()).events for wid in workflow_ids]
    if not histories:
        return None
    counts = [len(events) for events in histories]
    parts = [breakdown(events) for events in histories]
    return {
        "mean": round(sum(counts) / len(counts), 2),
        "min": min(counts),
        "max": max(counts),
        "time_ms": {key: round(sum(p[key] for p in parts) / len(parts), 1) for key in parts[0]},
        # What the server does for the payment, for a capacity model (an approximation).
        "temporal": capacity.mean_actions(histories),
    }
