"""The targets of issues #16 and #19, each checked against this run's own numbers: every one is
reported, met or missed, with the measured values it came from; a target whose scenarios were not
in the run is absent, not guessed. Scale-out has no target: its numbers are reported as they are."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from workers.bench.lookup import BASELINE, best_engine_variant, layout_variants, lookup

GIB_MB = 1024.0


def _check(
    issue: str, target: str, value: float | None, limit: float | None, op: str, detail: str
) -> dict[str, Any] | None:
    if value is None:
        return None
    met = None if limit is None else (value <= limit if op == "<=" else value >= limit)
    return {
        "issue": issue,
        "target": target,
        "value": round(value, 3),
        "limit": f"{op} {limit:g}" if limit is not None else "-",
        "met": met,
        "detail": detail,
    }


def _div(a: Any, b: Any) -> float | None:
    numbers = isinstance(a, int | float) and isinstance(b, int | float)
    return a / b if numbers and b else None


def _sub(a: Any, b: Any) -> float | None:
    return a - b if isinstance(a, int | float) and isinstance(b, int | float) else None


def _ratio_target(
    issue: str, target: str, scenarios: Mapping[str, Any], num: str, den: str, op: str, limit: float
) -> dict[str, Any] | None:
    a, b = lookup(scenarios, num), lookup(scenarios, den)
    return _check(issue, target, _div(a, b), limit, op, f"{num} {_fmt(a)} / {den} {_fmt(b)}")


def _shown(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.3g}"


def _fmt(value: Any) -> str:
    if not isinstance(value, int | float):
        return "-"
    return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def _payments(scenarios: Mapping[str, Any], best: str | None) -> list[dict[str, Any] | None]:
    found: list[dict[str, Any] | None] = []
    one_p50, sat = "concurrency_1.latency_ms.p50", "saturation"
    for name in layout_variants(scenarios, "durapay"):
        if best:
            found += [
                _ratio_target("#16", f"{name}: c=1 p50 vs engine best", scenarios,
                              f"{name}.{one_p50}", f"{best}.{one_p50}", "<=", 1.5),
                _ratio_target("#16", f"{name}: throughput at saturation vs engine best", scenarios,
                              f"{name}.{sat}.throughput_per_s", f"{best}.{sat}.throughput_per_s", ">=", 0.8),
                _ratio_target("#16", f"{name}: app CPU/payment at saturation vs engine best", scenarios,
                              f"{name}.{sat}.cpu_s_per_payment.app", f"{best}.{sat}.cpu_s_per_payment.app",
                              "<=", 1.5),
            ]  # fmt: skip
        found += [
            _ratio_target("#16", f"{name}: c=1 p50 vs engine baseline", scenarios,
                          f"{name}.{one_p50}", f"{BASELINE}.{one_p50}", "<=", 0.8),
            _ratio_target("#16", f"{name}: c=1 p99 vs its own p50", scenarios,
                          f"{name}.concurrency_1.latency_ms.p99", f"{name}.{one_p50}", "<=", 2.0),
        ]  # fmt: skip
    return found


def _webhooks(scenarios: Mapping[str, Any]) -> list[dict[str, Any] | None]:
    """Judged where each target means something: the rate at `--batch-concurrency` (what the
    receiver sustains), the p99 it adds one at a time (its own latency: at 32 in flight on two cores
    the p99 is mostly queueing behind the worker and the server). The other two are reported."""
    found: list[dict[str, Any] | None] = []
    for name in layout_variants(scenarios, "webhooks"):
        for prefix, judge_rate, judge_p99 in ((f"{name}", True, False), (f"{name}.sequential", False, True)):
            level = lookup(scenarios, f"{prefix}.concurrency")
            if level is None:  # a run from before the sequential phases
                continue
            hook_rate, raw_rate = (
                lookup(scenarios, f"{prefix}.{path}.per_s") for path in ("webhooks", "raw_signals")
            )
            found.append(
                _check("#16", f"{name} c={level}: accepted/s, receiver vs raw client signals",
                       _div(hook_rate, raw_rate), 0.8 if judge_rate else None, ">=",
                       f"{prefix}.webhooks.per_s {_fmt(hook_rate)} / raw_signals.per_s {_fmt(raw_rate)}")
            )  # fmt: skip
            hook, raw = (
                lookup(scenarios, f"{prefix}.{path}.latency_ms.p99") for path in ("webhooks", "raw_signals")
            )
            found.append(
                _check("#16", f"{name} c={level}: p99 ms the receiver adds over a raw signal", _sub(hook, raw),
                       5.0 if judge_p99 else None, "<=",
                       f"receiver p99 {_fmt(hook)} ms - raw signal p99 {_fmt(raw)} ms")
            )  # fmt: skip
    return found


def _scale(scenarios: Mapping[str, Any]) -> list[dict[str, Any] | None]:
    found: list[dict[str, Any] | None] = []
    for name in layout_variants(scenarios, "scale"):
        result = scenarios[name]
        n = result["count"]
        start, done = result["start"], result["complete_by_signal"]
        failed = start["errors"] + start["timed_out"]
        kinds = ", ".join(f"{k} {v}" for k, v in (start.get("error_kinds") or {}).items()) or "none"
        found += [
            _check("#19", f"{name} (N={n}): payments that failed to start", failed, 0, "<=",
                   f"errors by kind: {kinds}; not done in time: {start['timed_out']}"),
            _check("#16", f"{name} (N={n}): completed by signal", done["completed"], n, ">=",
                   f"{done['completed']} of {n} paid in {_fmt(done['all_completed_s'])} s"),
            _check("#16/#19", f"{name} (N={n}): worker RSS MB with all waiting", result["worker_memory"]["all_waiting"],
                   GIB_MB, "<=", f"peak {_fmt(result['worker_memory']['peak'])} MB, processes that run workflows"),
        ]  # fmt: skip
        if "engine_scale" in scenarios:
            found += [
                _ratio_target("#16/#19", f"{name}: started/s vs engine", scenarios,
                              f"{name}.start.per_s", "engine_scale.start.per_s", ">=", 0.5),
                _ratio_target("#19", f"{name}: start latency p99 vs engine", scenarios,
                              f"{name}.start.latency_ms.p99", "engine_scale.start.latency_ms.p99", "<=", 3.0),
                _ratio_target("#19", f"{name}: app CPU per started payment vs engine", scenarios,
                              f"{name}.start.cpu_s_per_payment.app",
                              "engine_scale.start.cpu_s_per_payment.app", "<=", 2.0),
            ]  # fmt: skip
    return found


def _provider(scenarios: Mapping[str, Any], best: str | None) -> list[dict[str, Any] | None]:
    found: list[dict[str, Any] | None] = []
    for name in layout_variants(scenarios, "durapay_stripe"):
        p50 = lookup(scenarios, f"{name}.concurrency_1.latency_ms.p50")
        provider_p50 = lookup(scenarios, f"{name}.provider.provider_ms.p50")
        best_p50 = lookup(scenarios, f"{best}.concurrency_1.latency_ms.p50") if best else None
        overhead = _sub(p50, provider_p50)
        detail = (
            f"c=1 p50 {_fmt(p50)} ms - provider's time per payment p50 {_fmt(provider_p50)} ms "
            f"(per-payment overhead p50 {_fmt(lookup(scenarios, f'{name}.provider.overhead_ms.p50'))} ms); "
            f"limit: engine best ({best}) c=1 p50"
        )
        found.append(
            _check("#16", f"{name}: ms durapay adds to the provider's time", overhead, best_p50, "<=", detail)
        )
    return found


def _scale_out(scenarios: Mapping[str, Any], cpus: int) -> list[dict[str, Any] | None]:
    """Two workers against one (no target: what it buys), and what this machine's cores allow: the
    payments per second at which the CPU one payment costs (app + server + store, at saturation)
    fills every core, when nothing else runs (the load generator's own CPU left out)."""
    found: list[dict[str, Any] | None] = []
    sat = "saturation"
    if "durapay_split2" in scenarios and "durapay_split" in scenarios:
        for label, path in (
            ("throughput at saturation", "throughput_per_s"),
            ("app CPU/payment", "cpu_s_per_payment.app"),
        ):
            a = lookup(scenarios, f"durapay_split2.{sat}.{path}")
            b = lookup(scenarios, f"durapay_split.{sat}.{path}")
            found.append(
                _check("#16", f"scale-out: {label}, two workers vs one", _div(a, b), None, "",
                       f"durapay_split2 {_fmt(a)} / durapay_split {_fmt(b)}")
            )  # fmt: skip
    for name in layout_variants(scenarios, "durapay"):
        cpu = lookup(scenarios, f"{name}.{sat}.cpu_s_per_payment") or {}
        total = sum(cpu.get(role) or 0.0 for role in ("app", "server", "store"))
        found.append(
            _check("#16", f"{name}: payments/s {cpus} cores allow (CPU-bound ceiling)", _div(cpus, total),
                   None, "", f"{cpus} cores / (app + server + store CPU {_fmt(total * 1000)} ms per payment); "
                   f"measured {_fmt(lookup(scenarios, f'{name}.{sat}.throughput_per_s'))}/s")
        )  # fmt: skip
    return found


_GROUPS: tuple[Callable[[Mapping[str, Any], str | None, int], list[dict[str, Any] | None]], ...] = (
    lambda scenarios, best, cpus: _payments(scenarios, best),
    lambda scenarios, best, cpus: _webhooks(scenarios),
    lambda scenarios, best, cpus: _scale(scenarios),
    lambda scenarios, best, cpus: _provider(scenarios, best),
    lambda scenarios, best, cpus: _scale_out(scenarios, cpus),
)


def targets(results: Mapping[str, Mapping[str, Any]], cpus: int) -> list[dict[str, Any]]:
    """Every target this run has the numbers for, per server variant; `cpus`: this machine's cores."""
    found = []
    for server, scenarios in results.items():
        best = best_engine_variant(scenarios)
        for group in _GROUPS:
            found += [{"server": server, **t} for t in group(scenarios, best, cpus) if t is not None]
    return found


def markdown(
    found: Sequence[Mapping[str, Any]], cpus: int | None, results: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    if not found:
        return []
    shares = [
        during["other_processes_cpu"]
        for scenarios in results.values()
        for result in scenarios.values()
        if (during := result.get("machine_during"))
    ]
    shared = f"; other processes used {min(shares):.0%}–{max(shares):.0%} of them meanwhile" if shares else ""
    verdict = {True: "met", False: "**missed**", None: "reported"}
    rows = [
        f"| {t['server']} | {t['issue']} | {t['target']} | {_shown(t['value'])} | {t['limit']} "
        f"| {verdict[t['met']]} | {t['detail']} |"
        for t in found
    ]
    header = "| server | issue | target | measured | limit | verdict | from |\n|---|---|---|---|---|---|---|"
    note = f"Targets (this run's numbers; the machine has {cpus} cores{shared}):"
    return [note + "\n\n" + header + "\n" + "\n".join(rows)]
