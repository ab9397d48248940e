"""The scenarios a bench run can measure, in the order they run. A scenario is a name, a kind and
one async function from (server, settings, run id, log dir) to its result; the durapay scenarios
plug in here the same way as the engine ones.

Each durapay scenario exists in every stack layout (see `stack.LAYOUTS`): `durapay` runs the API
and the worker in one process, `durapay_split` as `durapay api` + `durapay worker`, and
`durapay_split2` with two worker processes; `--durapay-layout` picks layouts for the durapay
scenarios named without one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workers.bench import durapay, engine
from workers.bench.server import Server
from workers.bench.settings import BenchSettings
from workers.bench.stack import LAYOUTS, ONE, scenario_name

SWEEP = "sweep"  # closed-loop latency/throughput against concurrency: run on every server variant
BATCH = "batch"  # N waiting payments (webhooks, scale): run on the first server only, they are long

RunFn = Callable[[Server, BenchSettings, str, Path], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Scenario:
    name: str
    kind: str
    title: str
    run: RunFn
    base: str = ""  # a durapay scenario's name in the one-process layout; "" for the engine's
    layout: str = ""


def _engine(name: str) -> RunFn:
    async def run(server: Server, settings: BenchSettings, run_id: str, log_dir: Path) -> dict[str, Any]:
        spec = engine.spec_for(name, server, settings, run_id)
        return await engine.run_engine_scenario(spec, log_dir / f"{server.variant}-{name}.log")

    return run


_LAYOUT_TITLES = {
    ONE: "API and worker in one process",
    "split": "`durapay api` + `durapay worker`, two processes",
    "split2": "`durapay api` + two `durapay worker` processes",
}


def _durapay(
    base: str, kind: str, title: str, scenario: Callable[[str], durapay.Scenario]
) -> tuple[Scenario, ...]:
    return tuple(
        Scenario(
            scenario_name(base, layout),
            kind,
            f"{title} [{_LAYOUT_TITLES[layout]}]",
            scenario(layout),
            base=base,
            layout=layout,
        )
        for layout in LAYOUTS
    )


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
    *_durapay(
        "durapay",
        SWEEP,
        "POST /v1/payments through the real API and worker: mock card success, auto-capture, "
        "fraud check, order confirmation",
        durapay.payments,
    ),
    *_durapay(
        "durapay_stripe",
        SWEEP,
        "POST /v1/payments at concurrency 1 through the real Stripe gateway, the fake Stripe answering "
        "each call after --provider-latency-ms",
        durapay.stripe_payments,
    ),
    *_durapay(
        "webhooks",
        BATCH,
        "signed mock webhooks through the receiver into signals vs raw client signals, "
        "to payments waiting for 3-D Secure",
        durapay.webhooks,
    ),
    *_durapay(
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
# reference, the other layouts and the realistic provider are there to ask for (--scenarios,
# --durapay-layout) when their numbers are needed: they are slower.
DEFAULT = ("engine_baseline", "engine_best_eager", "engine_best_uws", "durapay", "webhooks", "scale")


def select(names: Sequence[str], layouts: Sequence[str]) -> tuple[str, ...]:
    """The scenarios to run, in the registry's order (cheap sweeps first), whatever order they
    were named in: each name as given, and each durapay scenario named in its one-process form
    also in every layout of `layouts`."""
    unknown = [name for name in names if name not in BY_NAME]
    bad_layouts = [layout for layout in layouts if layout not in LAYOUTS]
    if unknown or not names:
        raise ValueError(f"unknown scenario(s) {unknown}; choose from {', '.join(BY_NAME)}")
    if bad_layouts or not layouts:
        raise ValueError(f"unknown layout(s) {bad_layouts}; choose from {', '.join(LAYOUTS)}")
    wanted = set(names)
    for name in names:
        scenario = BY_NAME[name]
        if scenario.base and scenario.layout == ONE:
            wanted.discard(name)
            wanted.update(s.name for s in SCENARIOS if s.base == name and s.layout in layouts)
    return tuple(s.name for s in SCENARIOS if s.name in wanted)
