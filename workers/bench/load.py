"""Load generation and statistics, shared by every scenario: a closed loop at a fixed concurrency
for a bounded time, and a bounded "do all of these" batch. Both are bounded in count and time."""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class OpTiming:
    """One operation, in seconds: until the caller had its answer and, when the scenario waits for
    it, until the workflow completed (the same moment for a client that waits for the result)."""

    answer_s: float
    completion_s: float | None = None


Op = Callable[[int], Awaitable[OpTiming]]
CpuProbe = Callable[[], dict[str, float]]  # role ("app", "server", ...) -> CPU seconds so far


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default) over already sorted values."""
    if not sorted_values:
        raise ValueError("no values")
    position = (len(sorted_values) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def latency_summary(seconds: Sequence[float]) -> dict[str, float] | None:
    """p50/p95/p99/max in milliseconds, or None when nothing was measured."""
    if not seconds:
        return None
    values = sorted(seconds)
    return {
        "p50": round(percentile(values, 0.50) * 1000, 3),
        "p95": round(percentile(values, 0.95) * 1000, 3),
        "p99": round(percentile(values, 0.99) * 1000, 3),
        "max": round(values[-1] * 1000, 3),
    }


def _cpu_per_op(before: dict[str, float], after: dict[str, float], ops: int) -> dict[str, float] | None:
    if ops == 0:
        return None
    return {role: round((after[role] - before[role]) / ops, 6) for role in after}


async def closed_loop(
    op: Op,
    *,
    concurrency: int,
    warmup_s: float,
    duration_s: float,
    op_timeout_s: float,
    cpu_probe: CpuProbe,
    first_index: int = 0,
) -> dict[str, Any]:
    """`concurrency` callers each run `op` back to back for `warmup_s + duration_s`.

    Latencies count every operation started after the warm-up (those still running at the end are
    awaited, each bounded by `op_timeout_s`); throughput and CPU per operation count what completed
    inside the measured window, so both describe the same steady state.
    """
    started = time.monotonic()
    window_start = started + warmup_s
    window_end = window_start + duration_s
    answers: list[float] = []
    completions: list[float] = []
    completed_in_window = 0
    errors: list[str] = []
    next_index = first_index
    cpu_at: dict[str, dict[str, float]] = {}

    async def caller() -> None:
        nonlocal next_index, completed_in_window
        while time.monotonic() < window_end:
            index = next_index
            next_index += 1
            op_started = time.monotonic()
            try:
                timing = await asyncio.wait_for(op(index), op_timeout_s)
            except Exception as exc:  # a failed operation is a result to report, not a crash
                errors.append(f"{type(exc).__name__}: {exc}"[:300])
                # A failing op often fails fast; without a pause it would spin and skew the CPU numbers.
                await asyncio.sleep(0.05)
                continue
            op_ended = time.monotonic()
            if op_started >= window_start:
                answers.append(timing.answer_s)
                if timing.completion_s is not None:
                    completions.append(timing.completion_s)
            if window_start <= op_ended <= window_end:
                completed_in_window += 1

    async def sample_cpu(name: str, at: float) -> None:
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        cpu_at[name] = cpu_probe()

    samplers = [
        asyncio.create_task(sample_cpu("start", window_start)),
        asyncio.create_task(sample_cpu("end", window_end)),
    ]
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    await asyncio.gather(*samplers)
    return {
        "concurrency": concurrency,
        "ops": len(answers),
        "errors": len(errors),
        "first_errors": errors[:3],
        "throughput_per_s": round(completed_in_window / duration_s, 3),
        "latency_ms": latency_summary(answers),
        "completion_ms": latency_summary(completions),
        "cpu_s_per_payment": _cpu_per_op(cpu_at["start"], cpu_at["end"], completed_in_window),
        "wall_s": round(time.monotonic() - started, 3),
        "next_index": next_index,
    }


async def sweep(
    op: Op,
    *,
    levels: Sequence[int],
    warmup_s: float,
    duration_s: float,
    op_timeout_s: float,
    cpu_probe: CpuProbe,
    plateau_gain: float = 0.05,
    patience: int = 2,
) -> list[dict[str, Any]]:
    """Run `closed_loop` at each concurrency in `levels` (ascending) and stop early once more
    callers no longer buy throughput: after `patience` levels in a row that do not beat the best
    so far by `plateau_gain`, the sweep is past saturation and higher levels would only add
    queueing latency and run time. One flat level is not enough on a shared machine: a neighbour's
    burst can flatten it."""
    results: list[dict[str, Any]] = []
    best = 0.0
    flat = 0
    next_index = 0
    for concurrency in levels:
        level = await closed_loop(
            op,
            concurrency=concurrency,
            warmup_s=warmup_s,
            duration_s=duration_s,
            op_timeout_s=op_timeout_s,
            cpu_probe=cpu_probe,
            first_index=next_index,
        )
        next_index = level.pop("next_index")
        results.append(level)
        if len(results) > 1 and level["throughput_per_s"] < best * (1 + plateau_gain):
            flat += 1
            if flat >= patience:
                break
        else:
            flat = 0
        best = max(best, level["throughput_per_s"])
    return results


def saturation(levels: Sequence[dict[str, Any]], within: float = 0.05) -> dict[str, Any]:
    """The saturation point of a sweep: the lowest concurrency whose throughput is within `within`
    of the best. Past it more callers only queue; taking the knee rather than the maximum keeps a
    few percent of noise at a much higher concurrency from reporting that queueing as the latency
    at saturation."""
    best = max(level["throughput_per_s"] for level in levels)
    return min(
        (level for level in levels if level["throughput_per_s"] >= best * (1 - within)),
        key=lambda level: level["concurrency"],
    )


async def batch(
    op: Callable[[int], Awaitable[float]],
    *,
    count: int,
    concurrency: int,
    timeout_s: float,
) -> dict[str, Any]:
    """Run `op(0..count-1)` with at most `concurrency` in flight, all within `timeout_s`.

    `op` returns its own latency in seconds. Reports how many finished, the wall time, the rate, the
    latency percentiles and the first errors; what did not finish in time is counted, not waited for.
    """
    started = time.monotonic()
    deadline = started + timeout_s
    latencies: list[float] = []
    errors: list[str] = []
    error_kinds: Counter[str] = Counter()  # e.g. ReadTimeout: the client gave up on an answer
    next_index = 0
    timed_out = 0

    async def caller() -> None:
        nonlocal next_index, timed_out
        while next_index < count:
            index = next_index
            next_index += 1
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out += 1
                continue
            try:
                latencies.append(await asyncio.wait_for(op(index), remaining))
            except TimeoutError:
                timed_out += 1
            except Exception as exc:  # counted and reported: one failure must not hide the rest
                errors.append(f"{type(exc).__name__}: {exc}"[:300])
                error_kinds[type(exc).__name__] += 1

    await asyncio.gather(*(caller() for _ in range(min(concurrency, count))))
    wall = time.monotonic() - started
    return {
        "count": count,
        "done": len(latencies),
        "errors": len(errors),
        "timed_out": timed_out,  # not done when the phase's time was up (not attempted, or cut off)
        "error_kinds": dict(error_kinds),
        "first_errors": errors[:3],
        "wall_s": round(wall, 3),
        "per_s": round(len(latencies) / wall, 3) if wall > 0 else None,
        "latency_ms": latency_summary(latencies),
    }


async def measured_batch(
    op: Callable[[int], Awaitable[float]],
    *,
    count: int,
    concurrency: int,
    timeout_s: float,
    cpu_probe: CpuProbe,
    settle: Callable[[int, float], Awaitable[int]] | None = None,
) -> dict[str, Any]:
    """`batch`, plus the CPU each process spent per payment.

    With `settle`, the batch's calls only set work going (signals): `settle(done, remaining_s)` then
    waits, for what is left of `timeout_s` (the phase's one bound), for that work to finish and
    returns how many payments completed. `all_completed_s` and the CPU then cover the whole, so a
    fast-to-accept signal cannot hide the work it causes.
    """
    cpu_before, started = cpu_probe(), time.monotonic()
    stats = await batch(op, count=count, concurrency=concurrency, timeout_s=timeout_s)
    remaining = max(0.0, timeout_s - (time.monotonic() - started))
    completed = await settle(stats["done"], remaining) if settle is not None else stats["done"]
    cpu_after, wall = cpu_probe(), time.monotonic() - started
    stats["completed"] = completed
    stats["all_completed_s"] = round(wall, 3)
    stats["completed_per_s"] = round(completed / wall, 3) if wall > 0 else None
    stats["cpu_s_per_payment"] = _cpu_per_op(cpu_before, cpu_after, completed)
    return stats
