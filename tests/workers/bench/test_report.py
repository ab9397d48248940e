"""Ratios and tables derive from the measured numbers of the run they describe, nothing else."""

from __future__ import annotations

import copy
from typing import Any

from workers.bench import report


def _sweep(p50: float, throughput: float, app_cpu: float, events: float) -> dict[str, Any]:
    level_1 = {
        "concurrency": 1,
        "ops": 10,
        "errors": 0,
        "throughput_per_s": throughput / 4,
        "latency_ms": {"p50": p50, "p95": p50 * 1.5, "p99": p50 * 2, "max": p50 * 3},
        "cpu_s_per_payment": {"app": app_cpu, "server": app_cpu * 2},
    }
    level_8 = {
        **level_1,
        "concurrency": 8,
        "throughput_per_s": throughput,
        "latency_ms": {"p50": p50 * 4, "p95": p50 * 6, "p99": p50 * 8, "max": p50 * 9},
    }
    split = {
        "workflow_task_wait": 8.0,
        "workflow_task_work": p50 / 2,
        "activity_wait": 0.0,
        "activity_work": 10.0,
        "other": 1.0,
        "total": p50,
    }
    history = {"mean": events, "min": events, "max": events, "time_ms": split}
    return report.summarize_sweep({"levels": [level_1, level_8], "history_events_per_payment": history})


def _results() -> dict[str, dict[str, Any]]:
    return {
        "tuned": {
            "engine_baseline": _sweep(100.0, 20.0, 0.05, 35.0),
            "engine_best_eager": _sweep(50.0, 30.0, 0.04, 15.0),
            "engine_best_uws": _sweep(60.0, 28.0, 0.04, 17.0),
            "durapay": _sweep(80.0, 16.0, 0.08, 40.0),
        },
        "untuned": {"engine_baseline": _sweep(250.0, 10.0, 0.05, 35.0)},
    }


def _by(found: list[dict[str, Any]], name: str, metric: str) -> dict[str, Any]:
    [ratio] = [r for r in found if r["name"] == name and r["metric"] == metric]
    return ratio


def test_summary_picks_concurrency_one_and_the_saturation_level() -> None:
    result = _results()["tuned"]["engine_baseline"]
    assert result["concurrency_1"]["concurrency"] == 1
    assert result["saturation"]["concurrency"] == 8


def test_ratios_point_at_the_numbers_they_divide() -> None:
    results = _results()
    found = report.ratios(results)
    assert found, "a run with durapay, both engine cases and both servers has ratios"
    for ratio in found:
        numerator = report.lookup(results, ratio["numerator"]["path"])
        denominator = report.lookup(results, ratio["denominator"]["path"])
        assert (numerator, denominator) == (ratio["numerator"]["value"], ratio["denominator"]["value"])
        assert ratio["value"] == round(numerator / denominator, 3)

    assert report.best_engine_variant(results["tuned"]) == "engine_best_eager"
    assert _by(found, "tuned: durapay / engine baseline", "p50 latency, c=1")["value"] == 0.8
    best = _by(found, "tuned: durapay / engine best (engine_best_eager)", "throughput at saturation")
    assert best["value"] == round(16 / 30, 3)
    assert _by(found, "engine_baseline: untuned / tuned dev server", "p50 latency, c=1")["value"] == 2.5


def test_ratios_follow_the_measurements() -> None:
    results = _results()
    changed = copy.deepcopy(results)
    changed["tuned"]["engine_baseline"]["concurrency_1"]["latency_ms"]["p50"] = 400.0
    before = _by(report.ratios(results), "tuned: durapay / engine baseline", "p50 latency, c=1")["value"]
    after = _by(report.ratios(changed), "tuned: durapay / engine baseline", "p50 latency, c=1")["value"]
    assert (before, after) == (0.8, 0.2)


def test_missing_sides_give_no_ratio() -> None:
    only_engine = {"tuned": {"engine_baseline": _results()["tuned"]["engine_baseline"]}}
    assert report.ratios(only_engine) == []


def test_markdown_tables_carry_the_run_numbers() -> None:
    results = _results()
    document = {"results": results, "ratios": report.ratios(results), "skipped": []}
    text = report.markdown(document)
    # No store CPU in these results (SQLite, or the engine): that column shows "-".
    row = "| tuned | durapay | 80.0 / 120.0 / 160.0 | 4.0 | 8 | 320.0 / 480.0 / 640.0 "
    row += "| 16.0 | 80.0 | - | 160.0 | 40.0 |"
    assert row in text
    assert "| untuned | engine_baseline | 35.0 | 8.0 | 125.0 | 0.0 | 10.0 | 1.0 | 250.0 |" in text
    assert "| tuned: durapay / engine baseline | 0.80x |" in text
