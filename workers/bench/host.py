"""The process an engine scenario runs in: one worker and the client that drives it, sharing the
process the way eager workflow start requires, so its CPU time and memory are the scenario's own.

`python -m workers.bench.host` reads an `EngineSpec` as JSON on stdin and writes the result as JSON
on stdout; logs go to stderr. The bench command starts one per scenario (see `engine.py`).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from pydantic import BaseModel
from temporalio.client import Client, WithStartWorkflowOperation, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.worker import Worker

from workers.bench import history, load, procstats
from workers.bench.engine_activities import ACTIVITIES
from workers.bench.engine_workflows import (
    FastPaymentWorkflow,
    PlainPaymentWorkflow,
    WaitingPaymentWorkflow,
)

BASELINE = "engine_baseline"
BEST_EAGER = "engine_best_eager"
BEST_UWS = "engine_best_uws"
SCALE = "engine_scale"

SWEEP_SCENARIOS = (BASELINE, BEST_EAGER, BEST_UWS)


class EngineSpec(BaseModel):
    scenario: Literal["engine_baseline", "engine_best_eager", "engine_best_uws", "engine_scale"]
    address: str
    namespace: str
    task_queue: str
    id_prefix: str  # unique per run and scenario: workflow ids never collide with earlier runs
    server_pid: int | None  # None: a server we did not start, whose CPU we cannot read
    levels: list[int]
    warmup_s: float
    duration_s: float
    op_timeout_s: float
    count: int  # scale: how many waiting workflows
    batch_concurrency: int
    batch_timeout_s: float


class _Probe:
    def __init__(self, server_pid: int | None) -> None:
        self.server_pid = server_pid

    def __call__(self) -> dict[str, float]:
        cpu = {"app": procstats.cpu_seconds(os.getpid())}
        if self.server_pid is not None:
            cpu["server"] = procstats.cpu_seconds(self.server_pid)
        return cpu


def _is_eager(handle: WorkflowHandle[Any, Any]) -> bool:
    # The SDK records whether the start response carried the first workflow task only under this
    # attribute; reading it is the one way to tell eager starts that happened from ones requested.
    return bool(getattr(handle, "__temporal_eagerly_started", False))


async def _sweep(spec: EngineSpec, client: Client) -> dict[str, Any]:
    eager_hits = 0
    eager_tries = 0

    def wid(index: int) -> str:
        return f"{spec.id_prefix}-{index}"

    async def baseline(index: int) -> load.OpTiming:
        started = time.monotonic()
        await client.execute_workflow(
            PlainPaymentWorkflow.run, wid(index), id=wid(index), task_queue=spec.task_queue
        )
        elapsed = time.monotonic() - started
        return load.OpTiming(answer_s=elapsed, completion_s=elapsed)

    async def best_eager(index: int) -> load.OpTiming:
        nonlocal eager_hits, eager_tries
        started = time.monotonic()
        handle = await client.start_workflow(
            FastPaymentWorkflow.run,
            wid(index),
            id=wid(index),
            task_queue=spec.task_queue,
            request_eager_start=True,
        )
        eager_tries += 1
        eager_hits += _is_eager(handle)
        await handle.result()
        elapsed = time.monotonic() - started
        return load.OpTiming(answer_s=elapsed, completion_s=elapsed)

    async def best_uws(index: int) -> load.OpTiming:
        started = time.monotonic()
        start_op = WithStartWorkflowOperation(
            FastPaymentWorkflow.run,
            wid(index),
            id=wid(index),
            task_queue=spec.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
        await client.execute_update_with_start_workflow(
            FastPaymentWorkflow.decide, start_workflow_operation=start_op
        )
        answered = time.monotonic() - started
        # The caller has its answer; the slot stays busy until the workflow is done so that the
        # throughput counts whole payments, not answers with their remaining steps still queued.
        await (await start_op.workflow_handle()).result()
        return load.OpTiming(answer_s=answered, completion_s=time.monotonic() - started)

    ops: dict[str, Callable[[int], Awaitable[load.OpTiming]]] = {
        BASELINE: baseline,
        BEST_EAGER: best_eager,
        BEST_UWS: best_uws,
    }
    op = ops[spec.scenario]
    levels = await load.sweep(
        op,
        levels=spec.levels,
        warmup_s=spec.warmup_s,
        duration_s=spec.duration_s,
        op_timeout_s=spec.op_timeout_s,
        cpu_probe=_Probe(spec.server_pid),
    )
    result: dict[str, Any] = {
        "levels": levels,
        "history_events_per_payment": await history.sample(client, [wid(i) for i in await history.probe(op)]),
    }
    if spec.scenario == BEST_EAGER:
        result["eager_start_ratio"] = round(eager_hits / eager_tries, 3) if eager_tries else None
    return result


async def _scale(spec: EngineSpec, client: Client) -> dict[str, Any]:
    """`count` payments waiting for 3-D Secure at once, then all completed by signal."""
    probe = _Probe(spec.server_pid)
    pid = os.getpid()
    waiting: list[str] = []  # ids of the payments that did start, in the order they did
    signalled: list[str] = []
    rss_idle = procstats.rss_bytes(pid)

    async def start(index: int) -> float:
        workflow_id = f"{spec.id_prefix}-{index}"
        started = time.monotonic()
        # Answered once the payment waits for the customer, as durapay's POST is.
        await client.execute_update_with_start_workflow(
            WaitingPaymentWorkflow.decide,
            start_workflow_operation=WithStartWorkflowOperation(
                WaitingPaymentWorkflow.run,
                workflow_id,
                id=workflow_id,
                task_queue=spec.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            ),
        )
        elapsed = time.monotonic() - started
        waiting.append(workflow_id)
        return elapsed

    async def customer_returns(index: int) -> float:
        begun = time.monotonic()
        await client.get_workflow_handle(waiting[index]).signal(WaitingPaymentWorkflow.action_completed)
        elapsed = time.monotonic() - begun
        signalled.append(waiting[index])
        return elapsed

    async def all_completed(_: int, remaining_s: float) -> int:
        async def result(index: int) -> float:
            await client.get_workflow_handle(signalled[index]).result()
            return 0.0

        waited = await load.batch(
            result, count=len(signalled), concurrency=spec.batch_concurrency, timeout_s=remaining_s
        )
        return waited["done"]

    measured_batch = functools.partial(
        load.measured_batch,
        concurrency=spec.batch_concurrency,
        timeout_s=spec.batch_timeout_s,
        cpu_probe=probe,
    )
    started = await measured_batch(start, count=spec.count)
    rss_waiting = procstats.rss_bytes(pid)
    completed = await measured_batch(customer_returns, count=len(waiting), settle=all_completed)
    result: dict[str, Any] = {
        "count": spec.count,
        "concurrency": spec.batch_concurrency,
        "start": started,
        "complete_by_signal": completed,
        "worker_memory": procstats.memory_while_waiting([pid], rss_idle, rss_waiting, len(waiting)),
        "history_events_per_payment": await history.sample(client, waiting[: history.SAMPLES]),
    }
    if spec.server_pid is not None:
        result["server_rss_mb"] = round(procstats.rss_bytes(spec.server_pid) / 2**20, 1)
    return result


async def run_spec(spec: EngineSpec) -> dict[str, Any]:
    client = await Client.connect(spec.address, namespace=spec.namespace)
    # SDK defaults throughout (cache size, slots, sandbox): the patterns are what is compared.
    worker = Worker(
        client,
        task_queue=spec.task_queue,
        workflows=[PlainPaymentWorkflow, FastPaymentWorkflow, WaitingPaymentWorkflow],
        activities=ACTIVITIES,
    )
    run = _scale if spec.scenario == SCALE else _sweep
    async with worker:
        return await run(spec, client)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    # The result gets a private copy of stdout; fd 1 itself goes to stderr (the log), because the
    # SDK core writes its own warnings to stdout and they must not end up inside the JSON.
    result_out = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    spec = EngineSpec.model_validate_json(sys.stdin.read())
    result = asyncio.run(run_spec(spec))
    with result_out:
        result_out.write(json.dumps(result))
    logging.shutdown()
    # The result is out and the worker has shut down. Skip interpreter teardown: the SDK core's
    # native threads can still call into Python while it finalizes, which now and then aborts the
    # process (PyGILState_Release, SIGABRT) and would turn a complete measurement into a failure.
    os._exit(0)


if __name__ == "__main__":
    main()
