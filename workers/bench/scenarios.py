"""The scenarios a bench run can measure, in the order they run. A scenario is a name, a kind and
one async function from (server, settings, run id, log dir) to its result; the durapay scenarios
plug in here the same way as the engine ones."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workers.bench import durapay, engine
from workers.bench.server import Server
from workers.bench.settings import BenchSettings

SWEEP = "sweep"  # closed-loop latency/throughput against concurrency: run on every server variant
BATCH = "batch"  # N waiting payments (webhooks, scale): run on the first server only, they are long

RunFn = Callable[[Server, BenchSettings, str, Path], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Scenario:
    name: str
    kind: str
    title: str
    run: RunFn


def _engine(name: str) -> RunFn:
    async def run(server: Server, settings: BenchSettings, run_id: str, log_dir: Path) -> dict[str, Any]:
        spec = engine.spec_for(name, server, settings, run_id)
        return await engine.run_engine_scenario(spec, log_dir / f"{server.variant}-{name}.log")

    return run


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "engine_baseline",
        SWEEP,
        "5 regular activities, normal start, client waits for the result",
        _engine("engine_baseline"),
    ),
    Scenario(
        "engine_best_eager",
        SWEEP,
        "eager start (client and worker in one process), 4 local + 1 regular activity, waits for the result",
        _engine("engine_best_eager"),
    ),
    Scenario(
        "engine_best_uws",
        SWEEP,
        "update-with-start answered once decided, 4 local + 1 regular activity",
        _engine("engine_best_uws"),
    ),
    Scenario(
        "durapay",
        SWEEP,
        "POST /v1/payments through the real API and worker: mock card success, auto-capture, "
        "fraud check, order confirmation",
        durapay.payments,
    ),
    Scenario(
        "webhooks",
        BATCH,
        "signed mock webhooks through the receiver into signals vs raw client signals, "
        "to payments waiting for 3-D Secure",
        durapay.webhooks,
    ),
    Scenario(
        "scale",
        BATCH,
        "N durapay payments waiting for 3-D Secure at once, then all completed by the customer's return signal",
        durapay.scale,
    ),
    Scenario(
        "engine_scale",
        BATCH,
        "N engine workflows waiting for 3-D Secure at once, then completed by signal",
        _engine("engine_scale"),
    ),
)

BY_NAME = {scenario.name: scenario for scenario in SCENARIOS}
# What a plain `durapay bench` measures: the five comparisons. The engine's own scale
# reference is there to ask for (--scenarios) when durapay's scale numbers need explaining.
DEFAULT = ("engine_baseline", "engine_best_eager", "engine_best_uws", "durapay", "webhooks", "scale")
