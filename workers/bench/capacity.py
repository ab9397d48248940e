"""What one payment costs the shared parts of a deployment, as inputs for a capacity model: the
rows and bytes it writes to PostgreSQL (read from the scenario's own database) and the Temporal
actions its history implies. Server and worker CPU per payment come from the load itself.

Rows: `pg_stat_user_tables` insert/update/delete counters, summed over the database's tables, from
after the migrations to after the stack stopped (a backend publishes its counters when idle or
when it exits, so the stack is stopped first). Bytes: `pg_total_relation_size` (heap, indexes,
TOAST) over the same tables, the same two moments: the storage the payments took, in 8 KB pages,
so meaningful over hundreds of payments, not a handful.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent

_TOTALS = """
SELECT coalesce(sum(n_tup_ins), 0), coalesce(sum(n_tup_upd), 0), coalesce(sum(n_tup_del), 0),
       coalesce(sum(pg_total_relation_size(relid)), 0)
FROM pg_stat_user_tables
"""
_KEYS = ("rows_inserted", "rows_updated", "rows_deleted", "bytes")


class StoreWrites:
    """Rows written and bytes grown in one PostgreSQL database between `start()` and `used()`."""

    def __init__(self, admin: Mapping[str, Any], database: str) -> None:
        self._conninfo = {**admin, "dbname": database}
        self._start: dict[str, int] | None = None

    def _totals(self) -> dict[str, int]:
        with psycopg.connect(**self._conninfo, autocommit=True) as conn:
            row = conn.execute(_TOTALS).fetchone()
        assert row is not None
        return {key: int(value) for key, value in zip(_KEYS, row, strict=True)}

    def start(self) -> None:
        self._start = self._totals()

    def used(self) -> dict[str, int] | None:
        if self._start is None:
            return None
        end = self._totals()
        return {key: end[key] - self._start[key] for key in _KEYS}


def per_payment(writes: Mapping[str, int] | None, payments: int) -> dict[str, Any] | None:
    """The scenario's store writes over the payments it made (every one created through the API)."""
    if writes is None or payments == 0:
        return None
    rows = writes["rows_inserted"] + writes["rows_updated"] + writes["rows_deleted"]
    return {
        "payments": payments,
        "total": dict(writes),
        "rows_per_payment": round(rows / payments, 2),
        "inserts_per_payment": round(writes["rows_inserted"] / payments, 2),
        "updates_per_payment": round(writes["rows_updated"] / payments, 2),
        "bytes_per_payment": round(writes["bytes"] / payments),
    }


# Events that are billable actions on Temporal Cloud (an approximation from history: what the
# server did for the workflow). Local activities are not here: all the markers one workflow task
# records count as one action, see `actions`.
_ACTION_EVENTS = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED: "starts",
    EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED: "activities",
    EventType.EVENT_TYPE_TIMER_STARTED: "timers",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED: "signals",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED: "updates",
    EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES: "upserts",
    EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED: "child_workflows",
    EventType.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED: "signals_sent",
}


def actions(events: Sequence[HistoryEvent]) -> dict[str, int]:
    """Counts by kind for one history, plus `workflow_tasks` (completed) and `actions`, the sum of
    the billable kinds with each workflow task that recorded local-activity markers as one."""
    counts: Counter[str] = Counter()
    tasks_with_markers: set[int] = set()
    for event in events:
        kind = _ACTION_EVENTS.get(event.event_type)
        if kind is not None:
            counts[kind] += 1
        elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            counts["workflow_tasks"] += 1
        elif event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
            counts["local_activities"] += 1
            tasks_with_markers.add(event.marker_recorded_event_attributes.workflow_task_completed_event_id)
    billable = sum(counts[kind] for kind in set(_ACTION_EVENTS.values()))
    return {**counts, "actions": billable + len(tasks_with_markers)}


def mean_actions(histories: Sequence[Sequence[HistoryEvent]]) -> dict[str, float]:
    per = [actions(events) for events in histories]
    keys = sorted({key for counts in per for key in counts})
    return {key: round(sum(counts.get(key, 0) for counts in per) / len(per), 2) for key in keys}


def _cpu_ms(result: Mapping[str, Any], role: str) -> str:
    """CPU ms per payment: at saturation for a sweep, start + completion for a batch that has both."""
    if "saturation" in result:
        phases = [result["saturation"]]
    elif "complete_by_signal" in result:
        phases = [result["start"], result["complete_by_signal"]]
    else:
        return "-"
    total = 0.0
    for phase in phases:
        value = (phase.get("cpu_s_per_payment") or {}).get(role)
        if value is None:
            return "-"
        total += value
    return f"{total * 1000:.1f}"


def markdown(results: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Per payment, for a capacity model: what the server keeps and does (from sampled histories,
    Temporal actions approximated) and what the store writes (measured over the whole scenario)."""
    rows = []
    for server, scenarios in results.items():
        for name, result in scenarios.items():
            writes = result.get("store_writes")
            events = result.get("history_events_per_payment") or {}
            temporal = events.get("temporal") or {}
            if not writes and not temporal:
                continue

            def t(key: str, temporal: Mapping[str, float] = temporal) -> str:
                return f"{temporal.get(key, 0):g}" if temporal else "-"

            w = writes or {}
            rows.append(
                f"| {server} | {name} | {events.get('mean', '-')} | {t('actions')} | {t('workflow_tasks')} "
                f"| {t('activities')} / {t('local_activities')} / {t('timers')} "
                f"| {t('signals')} / {t('updates')} / {t('upserts')} "
                f"| {w.get('inserts_per_payment', '-')} / {w.get('updates_per_payment', '-')} "
                f"| {round(w['bytes_per_payment'] / 1024, 1) if w else '-'} | {w.get('payments', '-')} "
                f"| {_cpu_ms(result, 'app')} | {_cpu_ms(result, 'server')} | {_cpu_ms(result, 'store')} |"
            )
    if not rows:
        return []
    header = (
        "| server | scenario | history events | Temporal actions (approx.) | workflow tasks "
        "| activities / local activities / timers | signals / updates / search-attribute upserts "
        "| store rows inserted / updated | store KB | payments (store) | app CPU ms | server CPU ms "
        "| store CPU ms |\n|" + "---|" * 13
    )
    note = (
        "Capacity-model inputs, per payment (history columns: mean of the sampled payments' histories "
        "when fetched; store columns: whole scenario over the payments it created):"
    )
    return [note + "\n\n" + header + "\n" + "\n".join(rows)]
