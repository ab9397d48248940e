"""The whole harness with tiny numbers: its own tuned and untuned dev servers, the default scenarios
(engine sweeps in their own processes, durapay's real API and worker in another), and the result
file, summary and plot it writes."""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from workers.bench import report
from workers.bench.main import add_arguments, run

HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


async def test_a_tiny_run_writes_a_consistent_result(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    argv = [
        "--server",
        "both",
        "--concurrency",
        "1",
        "--warmup",
        "0.1",
        "--duration",
        "0.6",
        "--signal-n",
        "4",
        "--scale-n",
        "6",
        "--batch-concurrency",
        "4",
        "--batch-timeout",
        "60",
        "--out",
        str(tmp_path),
    ]
    if not HAS_MATPLOTLIB:
        argv.append("--no-plot")

    assert await run(parser.parse_args(argv)) == 0

    document = json.loads((tmp_path / "result.json").read_text())
    assert document["schema"] == "durapay-bench/1" and document["errors"] == []
    assert document["machine"]["cpus"] >= 1 and "Server" in document["machine"]["temporal_cli"]
    assert (
        document["servers"]["tuned"]["dynamic_config"]
        and not document["servers"]["untuned"]["dynamic_config"]
    )

    sweeps = ("engine_baseline", "engine_best_eager", "engine_best_uws", "durapay")
    for server in ("tuned", "untuned"):
        for name in sweeps:
            result = document["results"][server][name]
            assert [level["concurrency"] for level in result["levels"]] == [1]
            one = result["concurrency_1"]
            assert one["errors"] == 0 and one["ops"] >= 1
            assert 0 < one["latency_ms"]["p50"] <= one["latency_ms"]["p95"] <= one["latency_ms"]["p99"]
            assert one["throughput_per_s"] > 0 and one["cpu_s_per_payment"]["app"] > 0
            assert "server" in one["cpu_s_per_payment"]
            assert result["saturation"] in result["levels"]
            events = result["history_events_per_payment"]
            assert events["mean"] > 0 and events["time_ms"]["total"] > 0
        # Local activities and an eager start leave fewer events than five regular activities.
        results = document["results"][server]
        events = {name: results[name]["history_events_per_payment"]["mean"] for name in sweeps}
        assert events["engine_best_eager"] < events["engine_baseline"]
        assert 0 <= results["engine_best_eager"]["eager_start_ratio"] <= 1

    durapay = document["results"]["tuned"]["durapay"]
    assert durapay["concurrency_1"]["errors"] == 0 and durapay["concurrency_1"]["ops"] >= 1
    if durapay["store"] == "postgresql":  # the store's own backends are measured; SQLite runs in the app
        assert durapay["concurrency_1"]["cpu_s_per_payment"]["store"] > 0 and durapay["store_cpu_s"] > 0
    assert durapay["history_events_per_payment"]["mean"] > 0
    assert durapay["history_events_per_payment"]["temporal"]["actions"] >= 1
    if durapay["store"] == "postgresql":  # what the payments wrote, read from the scenario's database
        assert (
            durapay["store_writes"]["inserts_per_payment"] > 0
            and durapay["store_writes"]["bytes_per_payment"] > 0
        )

    webhooks = document["results"]["tuned"]["webhooks"]
    # 4 payments per path, one at a time and then concurrently, all waiting for 3-D Secure.
    assert webhooks["start"]["done"] == 16 and webhooks["sequential"]["concurrency"] == 1
    for phase, path in itertools.product((webhooks, webhooks["sequential"]), ("webhooks", "raw_signals")):
        assert phase[path]["done"] == 4 and phase[path]["completed"] == 4
        assert phase[path]["latency_ms"]["p99"] > 0 and phase[path]["cpu_s_per_payment"]["app"] > 0

    scale = document["results"]["tuned"]["scale"]
    assert scale["start"]["done"] == 6 and scale["complete_by_signal"]["completed"] == 6
    assert scale["worker_memory"]["all_waiting"] > 0 and scale["server_rss_mb"] > 0
    assert {(item["scenario"], item["server"]) for item in document["skipped"]} == {
        ("webhooks", "untuned"),
        ("scale", "untuned"),
    }

    # Every ratio is this run's numerator / this run's denominator, found where it says.
    assert document["ratios"]
    for ratio in document["ratios"]:
        numerator = report.lookup(document["results"], ratio["numerator"]["path"])
        denominator = report.lookup(document["results"], ratio["denominator"]["path"])
        assert numerator == ratio["numerator"]["value"] and denominator == ratio["denominator"]["value"]
        assert ratio["value"] == round(numerator / denominator, 3)
    names = {ratio["name"] for ratio in document["ratios"]}
    assert "engine_baseline: untuned / tuned dev server" in names
    assert "durapay: untuned / tuned dev server" in names
    assert "tuned: durapay / engine baseline" in names
    assert any(name.startswith("tuned: durapay / engine best") for name in names)
    assert any(name.startswith("tuned: engine best") for name in names)
    assert "tuned: webhooks, webhooks / raw client signals" in names
    assert "tuned: webhooks, webhooks / raw client signals one at a time" in names
    # The issues' targets are judged on the same numbers, met or missed, none invented.
    judged = {target["target"] for target in document["targets"]}
    assert "webhooks c=1: p99 ms the receiver adds over a raw signal" in judged
    assert "durapay: c=1 p50 vs engine best" in judged and "scale (N=6): completed by signal" in judged
    for target in document["targets"]:  # judged against a limit, or reported without one
        assert target["met"] in (True, False) if target["limit"] != "-" else target["met"] is None

    summary = (tmp_path / "summary.md").read_text()
    baseline_p50 = document["results"]["tuned"]["engine_baseline"]["concurrency_1"]["latency_ms"]["p50"]
    assert f"| tuned | engine_baseline | {baseline_p50:.1f} / " in summary
    if HAS_MATPLOTLIB:
        assert (tmp_path / "bench.png").read_bytes().startswith(b"\x89PNG")


async def test_a_running_server_on_this_machine_can_be_used(
    temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    address = temporal_env.client.service_client.config.target_host
    argv = [
        "--address",
        address,
        "--scenarios",
        "engine_baseline",
        "--concurrency",
        "1",
        "--warmup",
        "0",
        "--duration",
        "0.5",
        "--out",
        str(tmp_path),
        "--no-plot",
    ]

    assert await run(parser.parse_args(argv)) == 0

    document = json.loads((tmp_path / "result.json").read_text())
    assert list(document["results"]) == ["external"] and document["servers"]["external"]["address"] == address
    level = document["results"]["external"]["engine_baseline"]["concurrency_1"]
    # A server the bench did not start has no CPU it can read: only the app's is reported.
    assert level["ops"] >= 1 and set(level["cpu_s_per_payment"]) == {"app"}


async def test_a_remote_server_is_refused(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--address", "192.0.2.10:7233", "--out", str(tmp_path)])
    assert await run(args) == 2
    assert not (tmp_path / "result.json").exists()


async def test_split_layouts_and_a_slow_provider(tmp_path: Path) -> None:
    """The production shape (API and workers in their own processes, two workers for scale-out) and
    the real Stripe gateway against its fake answering after a set latency, with tiny numbers."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    argv = [
        "--server",
        "tuned",
        "--scenarios",
        # durapay_stripe in the layout asked for; scale_split2 named as it is.
        "engine_best_eager,durapay_stripe,scale_split2,engine_scale",
        "--durapay-layout",
        "split",
        "--provider-latency-ms",
        "50",
        "--concurrency",
        "1",
        "--warmup",
        "0.1",
        "--duration",
        "0.3",
        "--scale-n",
        "4",
        "--batch-concurrency",
        "4",
        "--batch-timeout",
        "60",
        "--out",
        str(tmp_path),
        "--no-plot",
    ]

    assert await run(parser.parse_args(argv)) == 0

    document = json.loads((tmp_path / "result.json").read_text())
    results = document["results"]["tuned"]
    assert document["errors"] == []
    assert set(results) == {"engine_best_eager", "durapay_stripe_split", "scale_split2", "engine_scale"}
    stripe = results["durapay_stripe_split"]
    assert stripe["processes"] == ["api", "worker"]
    cpu = stripe["concurrency_1"]["cpu_s_per_payment"]
    assert cpu["app"] == pytest.approx(cpu["api"] + cpu["worker"], abs=1e-5)
    # Every payment waited for the provider at least its latency, measured at the fake.
    provider = stripe["provider"]
    assert provider["payments"] >= 1 and provider["calls_per_payment_before_answer"] >= 1
    assert provider["provider_ms"]["p50"] >= 50
    scale = results["scale_split2"]
    assert scale["processes"] == ["api", "worker1", "worker2"]
    assert scale["start"]["done"] == 4 and scale["complete_by_signal"]["completed"] == 4
    assert scale["start"]["latency_ms"]["max"] >= scale["start"]["latency_ms"]["p99"]
    judged = {target["target"] for target in document["targets"]}
    assert "durapay_stripe_split: ms durapay adds to the provider's time" in judged
    assert "scale_split2: start latency p99 vs engine" in judged
    assert "scale_split2: app CPU per started payment vs engine" in judged
    summary = (tmp_path / "summary.md").read_text()
    assert "Capacity-model inputs" in summary and "| tuned | scale_split2 |" in summary
