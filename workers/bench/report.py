"""Turns one run's measurements into what people read: ratios between scenarios of the same run, a
markdown summary and a plot. Every derived number names the measured numbers it came from."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from workers.bench import capacity, targets
from workers.bench.load import saturation
from workers.bench.lookup import BASELINE, best_engine_variant, layout_variants, lookup

# Sweep metrics compared between scenarios: (label, path inside a scenario's result).
SWEEP_METRICS: tuple[tuple[str, str], ...] = (
    ("p50 latency, c=1", "concurrency_1.latency_ms.p50"),
    ("p99 latency, c=1", "concurrency_1.latency_ms.p99"),
    ("throughput, c=1", "concurrency_1.throughput_per_s"),
    ("p50 latency at saturation", "saturation.latency_ms.p50"),
    ("p99 latency at saturation", "saturation.latency_ms.p99"),
    ("throughput at saturation", "saturation.throughput_per_s"),
    ("app CPU s/payment at saturation", "saturation.cpu_s_per_payment.app"),
    ("server CPU s/payment at saturation", "saturation.cpu_s_per_payment.server"),
    ("history events/payment", "history_events_per_payment.mean"),
)

WEBHOOK_METRICS: tuple[tuple[str, str], ...] = (
    ("p99 request to signal accepted", "latency_ms.p99"),
    ("p50 request to signal accepted", "latency_ms.p50"),
    ("accepted per second", "per_s"),
    ("paid per second, signal to paid", "completed_per_s"),
    ("app CPU s/payment", "cpu_s_per_payment.app"),
)
SCALE_METRICS: tuple[tuple[str, str], ...] = (
    ("started per second", "start.per_s"),
    ("start latency p50", "start.latency_ms.p50"),
    ("start latency p99", "start.latency_ms.p99"),
    ("start latency max", "start.latency_ms.max"),
    ("app CPU s/payment to start", "start.cpu_s_per_payment.app"),
    ("completed by signal per second", "complete_by_signal.completed_per_s"),
    ("app CPU s/payment to complete", "complete_by_signal.cpu_s_per_payment.app"),
    ("app RSS KB per waiting payment", "worker_memory.per_waiting_payment_kb"),
)

# CPU roles that are not one of the app's processes: the sum, the database, the Temporal server.
_NOT_PROCESSES = frozenset(("app", "store", "server"))


def summarize_sweep(result: dict[str, Any]) -> dict[str, Any]:
    """Add the two levels the tables talk about: concurrency 1 and the saturation point."""
    levels = result["levels"]
    return {
        **result,
        "concurrency_1": min(levels, key=lambda level: level["concurrency"]),
        "saturation": saturation(levels),
    }


def _ratio(document: Mapping[str, Any], name: str, metric: str, num: str, den: str) -> dict[str, Any] | None:
    numerator, denominator = lookup(document, num), lookup(document, den)
    if not isinstance(numerator, int | float) or not isinstance(denominator, int | float) or not denominator:
        return None
    return {
        "name": name,
        "metric": metric,
        "value": round(numerator / denominator, 3),
        "numerator": {"path": num, "value": numerator},
        "denominator": {"path": den, "value": denominator},
    }


def ratios(results: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every comparison the issue asks for that this run has both sides of.

    `results` is `{server variant: {scenario: result}}`; each ratio is numerator / denominator with
    both paths into that same mapping, so anyone can check it against the measured numbers.
    """
    found: list[dict[str, Any]] = []

    def add(name: str, metric: str, num: str, den: str) -> None:
        ratio = _ratio(results, name, metric, num, den)
        if ratio is not None:
            found.append(ratio)

    def sweep_pair(name: str, num_prefix: str, den_prefix: str) -> None:
        for metric, path in SWEEP_METRICS:
            add(name, metric, f"{num_prefix}.{path}", f"{den_prefix}.{path}")

    for server, scenarios in results.items():
        best = best_engine_variant(scenarios)
        for name in layout_variants(scenarios, "durapay"):
            sweep_pair(f"{server}: {name} / engine baseline", f"{server}.{name}", f"{server}.{BASELINE}")
            if best:
                sweep_pair(f"{server}: {name} / engine best ({best})", f"{server}.{name}", f"{server}.{best}")
        for name in layout_variants(scenarios, "durapay")[1:]:
            for metric, path in SWEEP_METRICS[:7]:
                add(
                    f"{server}: {name} / durapay",
                    metric,
                    f"{server}.{name}.{path}",
                    f"{server}.durapay.{path}",
                )
        if best:
            sweep_pair(
                f"{server}: engine best ({best}) / engine baseline",
                f"{server}.{best}",
                f"{server}.{BASELINE}",
            )
        for name in layout_variants(scenarios, "webhooks"):
            for (group, phase), (metric, path) in itertools.product(
                (("", name), (" one at a time", f"{name}.sequential")), WEBHOOK_METRICS
            ):
                add(
                    f"{server}: {name}, webhooks / raw client signals{group}",
                    metric,
                    f"{server}.{phase}.webhooks.{path}",
                    f"{server}.{phase}.raw_signals.{path}",
                )
        if "engine_scale" in scenarios:
            for name in layout_variants(scenarios, "scale"):
                for metric, path in SCALE_METRICS:
                    num, den = f"{server}.{name}.{path}", f"{server}.engine_scale.{path}"
                    add(f"{server}: {name}, durapay / engine", metric, num, den)
    if "untuned" in results and "tuned" in results:
        for scenario in results["untuned"]:
            if scenario in results["tuned"] and "levels" in results["untuned"][scenario]:
                for metric, path in SWEEP_METRICS[:6]:
                    add(
                        f"{scenario}: untuned / tuned dev server",
                        metric,
                        f"untuned.{scenario}.{path}",
                        f"tuned.{scenario}.{path}",
                    )
    return found


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _ms(seconds: Any) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f}"


def markdown(document: Mapping[str, Any]) -> str:
    """The tables for BENCHMARKS.md, straight from the result document."""
    results: Mapping[str, Mapping[str, Any]] = document["results"]
    sections = [
        *_sweep_table(results),
        *_time_split_table(results),
        *_batch_tables(results),
        *_ratio_tables(document.get("ratios", [])),
        *targets.markdown(document.get("targets", []), document.get("machine", {}).get("cpus"), results),
        *capacity.markdown(results),
        *_sharing_table(results),
    ]
    skipped = [
        f"- {item['scenario']} ({item['server']}): {item['reason']}" for item in document.get("skipped", [])
    ]
    if skipped:
        sections.append("Not measured in this run:\n\n" + "\n".join(skipped))
    return "\n\n".join(sections) + "\n"


def _table(header: Sequence[str], rows: Sequence[str]) -> list[str]:
    """A markdown table as one section, or no section when there is nothing to show."""
    if not rows:
        return []
    return ["\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *rows])]


def _label(name: str, result: Mapping[str, Any]) -> str:
    """The scenario's name, with the store it ran on when it has one (durapay's)."""
    return f"{name} ({result['store']})" if result.get("store") else name


def _sweep_table(results: Mapping[str, Mapping[str, Any]]) -> list[str]:
    rows = []
    for server, scenarios in results.items():
        for name, result in scenarios.items():
            if "saturation" not in result:
                continue
            one, sat = result["concurrency_1"], result["saturation"]
            cpu = sat["cpu_s_per_payment"] or {}
            rows.append(
                f"| {server} | {_label(name, result)} "
                f"| {_pcts(one['latency_ms'])} | {_fmt(one['throughput_per_s'])} "
                f"| {sat['concurrency']} | {_pcts(sat['latency_ms'])} | {_fmt(sat['throughput_per_s'])} "
                f"| {_app_cpu(cpu)} | {_ms(cpu.get('store'))} | {_ms(cpu.get('server'))} "
                f"| {_fmt(lookup(result, 'history_events_per_payment.mean'))} |"
            )
    header = (
        "server",
        "scenario",
        "c=1 p50 / p95 / p99 ms",
        "c=1 /s",
        "sat. c",
        "sat. p50 / p95 / p99 ms",
        "sat. /s",
        "app CPU ms/pay",
        "store CPU ms/pay",
        "server CPU ms/pay",
        "events/pay",
    )
    return _table(header, rows)


def _time_split_table(results: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Where one payment's time goes: the sweep scenarios' probe payments, from their histories."""
    parts = ("workflow_task_wait", "workflow_task_work", "activity_wait", "activity_work", "other", "total")
    rows = []
    for server, scenarios in results.items():
        for name, result in scenarios.items():
            sample = result.get("history_events_per_payment")
            if "levels" in result and sample:
                cells = " | ".join(_fmt(sample["time_ms"][part]) for part in parts)
                rows.append(f"| {server} | {_label(name, result)} | {_fmt(sample['mean'])} | {cells} |")
    header = (
        "server",
        "scenario",
        "events",
        "workflow task wait ms",
        "workflow task work ms",
        "activity wait ms",
        "activity work ms",
        "other ms",
        "total ms",
    )
    return _table(header, rows)


def _ratio_tables(found: Sequence[Mapping[str, Any]]) -> list[str]:
    """One table per kind of comparison (same metrics), one row per comparison:
    `numerator / denominator` of this run."""
    by_name: dict[str, dict[str, float]] = {}
    for ratio in found:
        by_name.setdefault(ratio["name"], {})[ratio["metric"]] = ratio["value"]
    kinds: dict[tuple[str, ...], list[str]] = {}
    for name, values in by_name.items():
        kinds.setdefault(tuple(values), []).append(name)
    tables = []
    for metrics, names in kinds.items():
        rows = [
            f"| {name} | " + " | ".join(f"{by_name[name][m]:.2f}x" for m in metrics) + " |" for name in names
        ]
        tables += _table(("comparison (ratio of this run's numbers)", *metrics), rows)
    return tables


def _sharing_table(results: Mapping[str, Mapping[str, Any]]) -> list[str]:
    rows = [
        f"| {server} | {name} | {_fmt(during['wall_s'])} | {during['machine_cpu_busy']:.0%} "
        f"| {during['other_processes_cpu']:.0%} | {_fmt(during['load_average_1m'], 2)} |"
        for server, scenarios in results.items()
        for name, result in scenarios.items()
        if (during := result.get("machine_during"))
    ]
    header = (
        "server",
        "scenario",
        "wall s",
        "all cores busy",
        "of which other processes",
        "load avg (1 min)",
    )
    return _table(header, rows)


def _app_cpu(cpu: Mapping[str, float]) -> str:
    """The app's CPU per payment; with several processes (a split layout), each one's share too."""
    parts = [f"{role} {_ms(seconds)}" for role, seconds in cpu.items() if role not in _NOT_PROCESSES]
    return _ms(cpu.get("app")) + (f" ({' + '.join(parts)})" if parts else "")


def _pcts(latency: Mapping[str, float] | None) -> str:
    if not latency:
        return "-"
    return f"{latency['p50']:.1f} / {latency['p95']:.1f} / {latency['p99']:.1f}"


def _cpu_sum(*phases: Mapping[str, Any]) -> dict[str, float]:
    """CPU per payment over several phases of the same payments (start, then completion)."""
    total: dict[str, float] = {}
    for phase in phases:
        for role, seconds in (phase.get("cpu_s_per_payment") or {}).items():
            total[role] = total.get(role, 0.0) + seconds
    return total


def _batch_tables(results: Mapping[str, Mapping[str, Any]]) -> list[str]:
    signal_rows, scale_rows = [], []
    for server, scenarios in results.items():
        for name, result in scenarios.items():
            # The webhooks scenario's phases one at a time come first, then at `concurrency`.
            phases = [result.get("sequential"), result]
            for phase, (label, key) in itertools.product(
                [phase for phase in phases if isinstance(phase, Mapping)],
                (("signed webhooks via receiver", "webhooks"), ("raw client signals", "raw_signals")),
            ):
                stats = phase.get(key)
                if isinstance(stats, Mapping):
                    cpu = stats.get("cpu_s_per_payment") or {}
                    signal_rows.append(
                        f"| {server} | {_label(name, result)}: {label} "
                        f"| {stats['count']} | {phase['concurrency']} "
                        f"| {_fmt(stats['per_s'])} | {_pcts(stats['latency_ms'])} "
                        f"| {stats['completed']} in {_fmt(stats['all_completed_s'])} s "
                        f"| {_app_cpu(cpu)} | {_ms(cpu.get('store'))} | {_ms(cpu.get('server'))} "
                        f"| {stats['errors'] + stats['timed_out']} |"
                    )
            if "complete_by_signal" in result:
                start, done = result["start"], result["complete_by_signal"]
                rss = result["worker_memory"]
                cpu = _cpu_sum(start, done)
                scale_rows.append(
                    f"| {server} | {_label(name, result)} | {result['count']} "
                    f"| {start['done']} in {_fmt(start['wall_s'])} s ({_fmt(start['per_s'])}/s) "
                    f"| {_pcts(start['latency_ms'])} / {_fmt(lookup(start, 'latency_ms.max'))} "
                    f"| {start['errors'] + start['timed_out']} "
                    f"| {_ms(lookup(start, 'cpu_s_per_payment.app'))} "
                    f"| {done['completed']} in {_fmt(done['all_completed_s'])} s ({_fmt(done['completed_per_s'])}/s) "
                    f"| {_fmt(rss['idle'])} → {_fmt(rss['all_waiting'])} (peak {_fmt(rss['peak'])}) "
                    f"| {_fmt(rss['per_waiting_payment_kb'])} "
                    f"| {_app_cpu(cpu)} | {_ms(cpu.get('store'))} | {_ms(cpu.get('server'))} "
                    f"| {done['errors'] + done['timed_out']} |"
                )
    signal_header = (
        "server",
        "path",
        "payments",
        "concurrency",
        "accepted/s",
        "accept p50 / p95 / p99 ms",
        "paid (incl. the work they caused)",
        "app CPU ms/pay",
        "store CPU ms/pay",
        "server CPU ms/pay",
        "failed",
    )
    scale_header = (
        "server",
        "scenario",
        "N",
        "started, waiting for 3DS",
        "start p50 / p95 / p99 / max ms",
        "start failed",
        "app CPU ms/started",
        "completed by signal",
        "app RSS MB",
        "KB per waiting payment",
        "app CPU ms/pay, start + complete",
        "store CPU ms/pay",
        "server CPU ms/pay",
        "complete failed",
    )
    return [*_table(signal_header, signal_rows), *_table(scale_header, scale_rows)]


def plot(results: Mapping[str, Mapping[str, Any]], path: Path) -> Path:
    """Latency percentiles and throughput against concurrency, one row per server variant."""
    import matplotlib  # an optional extra (`pip install '.[bench]'`): imported only to draw

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    servers = [s for s, scenarios in results.items() if any("levels" in r for r in scenarios.values())]
    fig, axes = plt.subplots(len(servers), 2, figsize=(13, 4.5 * len(servers)), squeeze=False)
    for row, server in enumerate(servers):
        lat_ax, tput_ax = axes[row]
        ticks = sorted({lv["concurrency"] for r in results[server].values() for lv in r.get("levels", [])})
        for index, (name, result) in enumerate(results[server].items()):
            if "levels" not in result:
                continue
            color = f"C{index}"
            levels = [lv for lv in result["levels"] if lv["latency_ms"]]
            xs = [lv["concurrency"] for lv in levels]
            for pct, style in (("p50", "-"), ("p99", ":")):
                lat_ax.plot(
                    xs,
                    [lv["latency_ms"][pct] for lv in levels],
                    style,
                    color=color,
                    marker="o",
                    markersize=3,
                    label=f"{name} {pct}",
                )
            tput_ax.plot(
                xs, [lv["throughput_per_s"] for lv in levels], "-", color=color, marker="o", label=name
            )
        for ax, ylabel in (
            (lat_ax, "latency to answer (ms), p50 solid, p99 dotted"),
            (tput_ax, "payments / s"),
        ):
            ax.set_xscale("log", base=2)
            ax.set_xticks(ticks, [str(c) for c in ticks])
            ax.set_xlabel("concurrent callers")
            ax.set_ylabel(ylabel)
            ax.set_title(f"{server} server")
            ax.grid(True, alpha=0.3)
        lat_ax.set_yscale("log")
        tput_ax.set_ylim(bottom=0)
        lat_ax.legend(fontsize=7, ncol=2)
        tput_ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def level_table(levels: Sequence[Mapping[str, Any]]) -> str:
    """One line per concurrency level, for the console while the run goes."""
    return "\n".join(
        f"    c={lv['concurrency']:<4} {_fmt(lv['throughput_per_s']):>7}/s  p50/p95/p99 {_pcts(lv['latency_ms'])} ms"
        f"  errors {lv['errors']}"
        for lv in levels
    )
