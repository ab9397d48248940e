"""What a payment costs while it waits for its customer (issue #19): history events per hour of
waiting and worker CPU per minute, for a card 3-D Secure payment (polled, as before the patch
`notified-wait-one-lookup`, and notified, as after it) and for a QR code payment (always polled).

    flock /tmp/durapay-bench.lock python -m workers.bench.waiting_cost [--n 150] [--window 100]
        [--out report.json]

Two measurements, both of the real `PaymentWorkflow` with stand-in activities (a gateway that
answers at once that the customer has not acted yet; order and store steps that do nothing; the
fraud check off): what is measured is the waiting itself, the timers, workflow tasks and lookups it
causes, not a real gateway's or store's I/O.

1. `schedule`, on the time-skipping test server: one payment per case waits out its whole action
   timeout (900 s, the default, and one hour), and its history is counted from the wait's first
   timer to the deadline's void: events, timers, lookups. Exact, not sampled; "per hour" is the
   count scaled to an hour of waiting.
2. `cpu`, on the tuned dev server from the pinned binary (as the bench's `server.py` starts it), with
   the worker in this process and its workflow cache at a third of the payments (3,000 waiting
   against the default 1,000-workflow cache): `n` payments start waiting, then for `window`
   seconds (their first minutes of waiting, where a poll loop asks most often) this process's CPU
   (/proc: the worker; the starting is over) and the events their histories gained are counted.
   The machine share (all CPU on the machine minus ours, over the window) is printed with them.

A check's cost is the polled card window less the notified one (the latter asks nothing in it);
CPU per minute over a whole wait is then computed (labelled so) from the schedule's checks.

The "before" card case is a gateway profile that declares no notified actions: the workflow then
issues the very commands it issued before the patch (the poll loop is unchanged behind it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from workers.bench.procstats import cpu_seconds, machine_busy_seconds
from workers.bench.server import TUNED, dev_server
from workers.temporal_binaries import start_time_skipping
from workflows import activity_names as act
from workflows.client import workflow_id
from workflows.domain import (
    CardMethod,
    GatewayProfile,
    NextAction,
    NextActionType,
    PaymentInput,
    PaymentSettings,
    PaymentStatus,
    WalletMethod,
)
from workflows.gateway_io import AuthorizeCall, CancelCall, GatewayPaymentStatus, GatewayResult, LookupCall
from workflows.ledger_io import OrderRelease, OrderReservation, PaymentTransition, ReservationResult
from workflows.money import Amount
from workflows.payment import PaymentWorkflow


@dataclass(frozen=True)
class Case:
    name: str
    notified: list[NextActionType]  # what the gateway profile declares
    wallet: bool  # a WeChat Pay QR code instead of a card's 3-D Secure redirect


CASES = (
    Case("card_3ds_polled (before)", [], wallet=False),
    Case("card_3ds_notified (after)", [NextActionType.REDIRECT_TO_URL], wallet=False),
    Case("qr_code_polled", [NextActionType.REDIRECT_TO_URL], wallet=True),
)
WAITS = (timedelta(seconds=900), timedelta(hours=1))


def payment_input(case: Case, payment_id: str, wait: timedelta) -> PaymentInput:
    profile = GatewayProfile(
        id="waiting",
        name="Waiting",
        methods=["card", "wallet:wechat_pay"],
        currencies=["USD"],
        notified_actions=case.notified,
    )
    method = WalletMethod(wallet="wechat_pay", flow="native") if case.wallet else CardMethod(token="tok_3ds")
    return PaymentInput(
        payment_id=payment_id,
        order_id=f"order-{payment_id}",
        gateway=profile,
        amount=Amount(minor=4999, currency="USD"),
        method=method,
        request_fingerprint="fp",
        settings=PaymentSettings(
            action_timeout_seconds=int(wait.total_seconds()),
            enable_fraud_check=False,
            # Closed soon after the void: the wait is what is measured.
            settlement_window_seconds=60,
            payment_window_seconds=60,
        ),
    )


@dataclass
class Waiting:
    """The payments that started to wait (recorded as `authorizing`), until `expected` have."""

    expected: int
    ids: set[str] = field(default_factory=set)
    everyone: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, payment_id: str) -> None:
        self.ids.add(payment_id)
        if len(self.ids) >= self.expected:
            self.everyone.set()


def activities(waiting: Waiting | None = None) -> list:
    """A gateway whose customer never acts, and steps around it that do nothing but note in
    `waiting` the payments that started to wait."""

    @activity.defn(name=act.AUTHORIZE)
    async def authorize(call: AuthorizeCall) -> GatewayResult:
        if isinstance(call.method, WalletMethod):
            action = NextAction(type=NextActionType.DISPLAY_QR_CODE, qr_code="weixin://wxpay/bizpayurl?pr=x")
        else:
            action = NextAction(type=NextActionType.REDIRECT_TO_URL, url="https://acs.example/3ds")
        return GatewayResult(
            status=GatewayPaymentStatus.REQUIRES_ACTION, provider_payment_id="pi_waiting", next_action=action
        )

    @activity.defn(name=act.LOOKUP)
    async def lookup(call: LookupCall) -> GatewayResult:
        return GatewayResult(status=GatewayPaymentStatus.REQUIRES_ACTION, provider_payment_id="pi_waiting")

    @activity.defn(name=act.CANCEL)
    async def cancel(call: CancelCall) -> GatewayResult:
        return GatewayResult(status=GatewayPaymentStatus.CANCELLED)

    @activity.defn(name=act.RESERVE_ORDER)
    async def reserve(reservation: OrderReservation) -> ReservationResult:
        return ReservationResult(accepted=True)

    @activity.defn(name=act.RELEASE_ORDER)
    async def release(release: OrderRelease) -> None:
        return None

    @activity.defn(name=act.RECORD_TRANSITION)
    async def record(transition: PaymentTransition) -> None:
        if waiting is not None and transition.view.status is PaymentStatus.AUTHORIZING:
            waiting.add(transition.view.id)

    return [authorize, lookup, cancel, reserve, release, record]


def _at(event: HistoryEvent) -> datetime:
    return event.event_time.ToDatetime()


def _lookups(events: Sequence[HistoryEvent]) -> int:
    return sum(
        event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and event.activity_task_scheduled_event_attributes.activity_type.name == act.LOOKUP
        for event in events
    )


def _timers(events: Sequence[HistoryEvent]) -> int:
    return sum(event.event_type == EventType.EVENT_TYPE_TIMER_STARTED for event in events)


def during_wait(events: Sequence[HistoryEvent]) -> list[HistoryEvent]:
    """The wait's events: from its first timer (the authorization's answer recorded before it is
    the payment's, not the wait's) up to the deadline's void, not included. The regular activities
    are the authorization, the lookups and the void (local steps are markers)."""
    first_timer = next(e for e in events if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED)
    void = next(
        e
        for e in events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == act.CANCEL
    )
    return [e for e in events if first_timer.event_id <= e.event_id < void.event_id]


async def _history(handle: WorkflowHandle) -> list[HistoryEvent]:
    return [event async for event in handle.fetch_history_events()]


@dataclass(frozen=True)
class WholeWait:
    """One payment's whole wait (measurement 1)."""

    case: str
    wait_s: int
    events: int
    timers: int
    lookups: int

    @property
    def per_hour(self) -> float:
        return 3600 / self.wait_s


@dataclass(frozen=True)
class Window:
    """`n` payments waiting through a window of `seconds` (measurement 2)."""

    case: str
    n: int
    seconds: float
    worker_cpu_ms: float
    lookups: int
    events: int
    machine_share_others: float  # the rest of the machine's CPU over the window, of all its cores


async def schedule() -> list[WholeWait]:
    """Measurement 1: whole waits on the time-skipping test server."""
    rows = []
    env = await start_time_skipping()
    try:
        task_queue = f"waiting-cost-{uuid.uuid4().hex[:8]}"
        async with Worker(
            env.client, task_queue=task_queue, workflows=[PaymentWorkflow], activities=activities()
        ):
            for case in CASES:
                for wait in WAITS:
                    payment_id = f"wait-{uuid.uuid4().hex[:12]}"
                    handle = await env.client.start_workflow(
                        PaymentWorkflow.run,
                        payment_input(case, payment_id, wait),
                        id=workflow_id(payment_id),
                        task_queue=task_queue,
                    )
                    await handle.result()
                    events = during_wait(await _history(handle))
                    rows.append(
                        WholeWait(
                            case.name,
                            int(wait.total_seconds()),
                            len(events),
                            _timers(events),
                            _lookups(events),
                        )
                    )
    finally:
        await env.shutdown()
    return rows


@asynccontextmanager
async def _server_client(log_dir: Path) -> AsyncIterator[Client]:
    async with dev_server(TUNED, log_dir / "temporal.log") as server:
        yield await Client.connect(
            server.address, namespace=server.namespace, data_converter=pydantic_data_converter
        )


async def cpu(case: Case, n: int, window_s: float, log_dir: Path) -> Window:
    """Measurement 2: `n` payments waiting on a real server, the worker's CPU over `window_s`."""
    waiting = Waiting(expected=n)
    async with _server_client(log_dir) as client:
        task_queue = f"waiting-cost-{uuid.uuid4().hex[:8]}"
        worker = Worker(
            client,
            task_queue=task_queue,
            workflows=[PaymentWorkflow],
            activities=activities(waiting),
            max_cached_workflows=max(1, n // 3),
        )
        async with worker:
            handles: list[WorkflowHandle] = []
            wait = WAITS[0]
            for first in range(0, n, 32):
                handles += await asyncio.gather(
                    *(
                        client.start_workflow(
                            PaymentWorkflow.run,
                            payment_input(case, pid, wait),
                            id=workflow_id(pid),
                            task_queue=task_queue,
                        )
                        for pid in (f"wait-{uuid.uuid4().hex[:12]}" for _ in range(first, min(n, first + 32)))
                    )
                )
            await waiting.everyone.wait()
            await asyncio.sleep(2)  # the workflow tasks that start their timers
            pid = os.getpid()
            cpu_0, busy_0, wall_0 = cpu_seconds(pid), machine_busy_seconds(), time.monotonic()
            started_at = datetime.now().astimezone()
            await asyncio.sleep(window_s)
            cpu_1, busy_1, wall_1 = cpu_seconds(pid), machine_busy_seconds(), time.monotonic()
            ended_at = datetime.now().astimezone()
        histories = await asyncio.gather(*(_history(h) for h in handles))
    in_window = [e for events in histories for e in events if started_at < _at(e).astimezone() < ended_at]
    seconds, ours = wall_1 - wall_0, cpu_1 - cpu_0
    others = ((busy_1 - busy_0) - ours) / seconds / (os.cpu_count() or 1)
    return Window(case.name, n, seconds, ours * 1000, _lookups(in_window), len(in_window), others)


def per_check(polled: Window, notified: Window) -> tuple[float, float]:
    """CPU ms and history events of one check (timer, workflow tasks, lookup, replays of evicted
    histories): the polled card run less the notified one (same payments, same window; the
    notified payments asked nothing in it, so the difference is the checks)."""
    checks = polled.lookups - notified.lookups
    if checks <= 0:
        raise RuntimeError("no checks in the polled run's window: lengthen --window")
    return (polled.worker_cpu_ms - notified.worker_cpu_ms) / checks, (
        polled.events - notified.events
    ) / checks


def report(rows: Sequence[WholeWait], windows: Sequence[Window]) -> dict[str, object]:
    """What is printed: measured, and (labelled) computed from what was measured."""
    out: dict[str, object] = {
        "whole_wait_measured": [
            {**asdict(row), "events_per_hour": round(row.events * row.per_hour, 1)} for row in rows
        ]
    }
    if windows:
        cpu_ms, events = per_check(windows[0], windows[1])
        out["window_measured"] = [
            {
                **asdict(w),
                "cpu_ms_per_payment_minute": round(w.worker_cpu_ms / w.n / (w.seconds / 60), 3),
                "events_per_payment_hour": round(w.events / w.n / (w.seconds / 3600), 1),
            }
            for w in windows
        ]
        out["per_check_measured"] = {"cpu_ms": round(cpu_ms, 2), "events": round(events, 1)}
        # The whole wait's checks per hour times a check's CPU, averaged over the wait.
        out["cpu_ms_per_payment_minute_computed"] = {
            f"{row.case} {row.wait_s} s": round(row.lookups * row.per_hour * cpu_ms / 60, 3) for row in rows
        }
    return out


async def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers.bench.waiting_cost", description=__doc__)
    parser.add_argument("--n", type=int, default=150, help="payments waiting at once in the CPU run")
    parser.add_argument(
        "--window",
        type=float,
        default=100.0,
        help="seconds of the CPU window (the polls at 30 s and 90 s of age fall in it)",
    )
    # The SDK core logs its warnings to stdout too: a file holds the report alone.
    parser.add_argument("--out", type=Path, help="also write the report (JSON) to this file")
    parser.add_argument("--skip-cpu", action="store_true", help="the schedule only (seconds, no dev server)")
    args = parser.parse_args(argv)
    rows = await schedule()
    windows: list[Window] = []
    if not args.skip_cpu:
        with tempfile.TemporaryDirectory(prefix="waiting-cost-") as log_dir:
            windows = [await cpu(case, args.n, args.window, Path(log_dir)) for case in CASES]
    text = json.dumps(report(rows, windows), indent=1)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
