"""What the harness reads about processes and histories: /proc counters and event timestamps."""

from __future__ import annotations

import os
import time

from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent

from workers.bench import history, procstats


def test_cpu_seconds_grow_with_work() -> None:
    pid = os.getpid()
    before = procstats.cpu_seconds(pid)
    deadline = time.process_time() + 0.1
    while time.process_time() < deadline:
        pass
    assert procstats.cpu_seconds(pid) - before >= 0.05
    assert procstats.own_cpu_seconds() >= procstats.cpu_seconds(pid) - 0.05
    assert procstats.machine_busy_seconds() >= procstats.cpu_seconds(pid) - 0.05


def test_memory_is_read_in_bytes() -> None:
    pid = os.getpid()
    assert 10 * 2**20 < procstats.rss_bytes(pid) <= procstats.peak_rss_bytes(pid)


def _event(
    event_id: int, at_ms: int, event_type: EventType.ValueType, **attributes: dict[str, int]
) -> HistoryEvent:
    stamp = Timestamp()
    stamp.FromMilliseconds(at_ms)
    return HistoryEvent(event_id=event_id, event_time=stamp, event_type=event_type, **attributes)


def test_breakdown_splits_a_history_into_waiting_and_work() -> None:
    events = [
        _event(1, 1000, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED),
        _event(2, 1000, EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED),
        _event(
            3,
            1040,
            EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
            workflow_task_started_event_attributes={"scheduled_event_id": 2},
        ),
        _event(
            4,
            1050,
            EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
            workflow_task_completed_event_attributes={"started_event_id": 3},
        ),
        _event(5, 1050, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED),
        _event(
            6,
            1052,
            EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED,
            activity_task_started_event_attributes={"scheduled_event_id": 5},
        ),
        _event(
            7,
            1060,
            EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
            activity_task_completed_event_attributes={"started_event_id": 6},
        ),
        _event(8, 1065, EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED),
        _event(
            9,
            1105,
            EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
            workflow_task_started_event_attributes={"scheduled_event_id": 8},
        ),
        _event(
            10,
            1110,
            EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
            workflow_task_completed_event_attributes={"started_event_id": 9},
        ),
        _event(11, 1110, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED),
    ]
    assert history.breakdown(events) == {
        "workflow_task_wait": 80.0,
        "workflow_task_work": 15.0,
        "activity_wait": 2.0,
        "activity_work": 8.0,
        "other": 5.0,  # activity completed at 1060, next workflow task scheduled at 1065
        "total": 110.0,
    }
