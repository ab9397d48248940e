"""`durapay reconcile`: compare our payments with their gateways, report drift, optionally repair it.

    durapay reconcile --since 24h [--until 2030-01-02T00:00Z] [--repair] [--json report.json]
    durapay reconcile --schedule [--every 1h] [--window 2h] [--repair]

`--since` / `--until` take an ISO 8601 time with its UTC offset (`2030-01-01T00:00Z`) or a duration
back from now (`90m`, `24h`, `7d`). Without `--repair` nothing changes anywhere and Temporal is not
needed. With it, each drift an event can express is handed to the payment's workflow (see
activities/reconciliation.py); nothing is written to the store directly.

`--schedule` creates, or updates in place, the Temporal Schedule `durapay-reconcile` (or
`--schedule-id`), which runs
`ReconciliationWorkflow` on the worker's task queue every `--every` over the last `--window`: run it
again with other options to change it. The window should be longer than the interval, so a payment
that was still in flight (within `--grace`) at one run is looked at again by the next.

Exit codes: 0 nothing needs attention (no drift, or every drift repaired); 1 drift left for a person
(any drift without `--repair`, or one no event can express); 2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from workers.config import DurapayConfig
from workflows.reconcile_io import ReconcileReport, ReconcileRequest, ReconcileWindow, RepairAction

if TYPE_CHECKING:
    from temporalio.client import Client

SCHEDULE_ID = "durapay-reconcile"

_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """`90m`, `24h`, `7d`, `30s`, `0s` -> timedelta; anything else is a usage error."""
    match = _DURATION.match(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 30m, 24h or 7d")
    return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def positive_duration(text: str) -> timedelta:
    duration = parse_duration(text)
    if not duration:
        raise argparse.ArgumentTypeError(f"{text!r}: must be longer than zero")
    return duration


def parse_moment(text: str, *, now: datetime | None = None) -> datetime:
    """An ISO 8601 time with its offset, or a duration back from `now`."""
    if _DURATION.match(text.strip()):
        return (now or datetime.now(UTC)) - parse_duration(text)
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither an ISO 8601 time (2030-01-01T00:00Z) nor a duration (24h)"
        ) from None
    if moment.tzinfo is None:
        # A time without an offset means something else on every machine: make the caller say.
        raise argparse.ArgumentTypeError(f"{text!r} has no UTC offset; write e.g. {text}Z or {text}+08:00")
    return moment.astimezone(UTC)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--since", type=parse_moment, help="start of the range: ISO 8601 with offset, or e.g. 24h ago"
    )
    parser.add_argument("--until", type=parse_moment, help="end of the range (default: now)")
    parser.add_argument(
        "--repair",
        action="store_true",
        help="hand each repairable drift to its payment's workflow as an event",
    )
    parser.add_argument(
        "--grace",
        type=parse_duration,
        default=timedelta(seconds=60),
        help="skip payments updated this recently: still in flight (default 60s)",
    )
    parser.add_argument(
        "--json", metavar="FILE", help="also write the report as JSON to FILE ('-': stdout, no table)"
    )
    parser.add_argument("--concurrency", type=int, default=4, help="lookups at a time (default 4)")
    parser.add_argument(
        "--schedule",
        action="store_true",
        help="create or update the Temporal Schedule instead of running now",
    )
    parser.add_argument(
        "--schedule-id", default=SCHEDULE_ID, help=f"the schedule's id (default {SCHEDULE_ID})"
    )
    parser.add_argument(
        "--every", type=positive_duration, default=timedelta(hours=1), help="schedule interval (default 1h)"
    )
    parser.add_argument(
        "--window",
        type=positive_duration,
        default=timedelta(hours=2),
        help="how far back each scheduled run looks (default 2h)",
    )


class UsageError(Exception):
    """Options that parse one by one but do not go together."""


async def run_reconcile(config: DurapayConfig, args: argparse.Namespace, *, out: TextIO | None = None) -> int:
    try:
        return await _run(config, args, out or sys.stdout)
    except UsageError as exc:
        print(f"durapay reconcile: {exc}", file=sys.stderr)
        return 2


async def _run(config: DurapayConfig, args: argparse.Namespace, out: TextIO) -> int:
    # Imported here: the CLI's other commands should not pay for loading the worker's modules.
    from activities.reconciliation import Reconciler, TemporalPaymentSignals
    from workers.worker import Runtime, connect, payment_reopener

    if args.concurrency <= 0:
        raise UsageError("--concurrency must be positive")
    if args.schedule:
        if args.since or args.until:
            raise UsageError("--schedule looks back --window from each run; --since / --until do not apply")
        window = ReconcileWindow(
            window_seconds=int(args.window.total_seconds()),
            repair=args.repair,
            grace_seconds=int(args.grace.total_seconds()),
        )
        client = await connect(config)
        outcome = await ensure_schedule(
            client, args.schedule_id, task_queue=config.temporal.task_queue, every=args.every, window=window
        )
        print(
            f"schedule {args.schedule_id} {outcome}: every {args.every}, looking back {args.window}, "
            f"{'repairing' if args.repair else 'report only'}, task queue {config.temporal.task_queue}",
            file=out,
        )
        return 0
    if args.since is None:
        raise UsageError("--since is required (e.g. --since 24h), or use --schedule")
    until = args.until or datetime.now(UTC)
    if args.since >= until:
        raise UsageError(f"--since {args.since.isoformat()} is not before --until {until.isoformat()}")
    request = ReconcileRequest(
        since=args.since, until=until, repair=args.repair, grace_seconds=int(args.grace.total_seconds())
    )
    async with await Runtime.open(config) as runtime:
        # Only a repair touches Temporal: a report can be made while it is down.
        signals = None
        if args.repair:
            client = await connect(config)
            reopener = payment_reopener(client, runtime, config.temporal.task_queue)
            signals = TemporalPaymentSignals(client, reopener)
        reconciler = Reconciler(runtime.store, runtime.registry, signals, concurrency=args.concurrency)
        report = await reconciler.run(request)
    if args.json != "-":
        print(render_table(report), file=out)
    if args.json:
        document = json.dumps(report_json(report), indent=2)
        if args.json == "-":
            print(document, file=out)
        else:
            Path(args.json).write_text(document + "\n", encoding="utf-8")  # noqa: ASYNC240 (CLI, once)
    return 1 if report.needs_attention else 0


def report_json(report: ReconcileReport) -> dict:
    return {**report.model_dump(mode="json"), "needs_attention": report.needs_attention}


def render_table(report: ReconcileReport) -> str:
    header = ("payment", "gateway", "ours", "theirs", "drift", "action", "detail")
    rows = [
        (d.payment_id, d.gateway, d.ours.value, d.theirs or "-", d.kind.value, d.action.value, d.detail)
        for d in report.drifts
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)) + "  " + row[-1]
        for row in [header, *rows]
    ]
    if not rows:
        lines = ["no drift"]
    drift_count = len(report.drifts) + report.unlisted_drifts
    repaired = sum(d.action is RepairAction.SIGNALLED for d in report.drifts) + report.unlisted_signalled
    lines.append(
        f"{report.since.isoformat()} .. {report.until.isoformat()}: checked {report.checked}, "
        f"consistent {report.consistent}, drift {drift_count} (repaired {repaired}"
        + (f", {report.unlisted_drifts} not listed" if report.unlisted_drifts else "")
        + f"), skipped {report.skipped_recent} in flight"
    )
    return "\n".join(lines)


async def ensure_schedule(
    client: Client,
    schedule_id: str = SCHEDULE_ID,
    *,
    task_queue: str,
    every: timedelta,
    window: ReconcileWindow,
) -> str:
    """Create the reconciliation schedule, or bring an existing one to these settings; "created" or
    "updated". Safe to run at every deploy."""
    from temporalio.client import (
        Schedule,
        ScheduleActionStartWorkflow,
        ScheduleAlreadyRunningError,
        ScheduleIntervalSpec,
        ScheduleOverlapPolicy,
        SchedulePolicy,
        ScheduleSpec,
        ScheduleUpdate,
    )

    from workflows.reconciliation import ReconciliationWorkflow

    schedule = Schedule(
        action=ScheduleActionStartWorkflow(
            ReconciliationWorkflow.run, window, id=f"{schedule_id}-run", task_queue=task_queue
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
        # A run still going when the next is due (a slow provider) makes the next one pointless.
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )
    try:
        await client.create_schedule(schedule_id, schedule)
        return "created"
    except ScheduleAlreadyRunningError:
        await client.get_schedule_handle(schedule_id).update(lambda _: ScheduleUpdate(schedule=schedule))
        return "updated"
