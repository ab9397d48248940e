"""`durapay bench`: measure the engine and durapay side by side in one run on one machine.

The CLI wires the subcommand to `add_arguments(parser)` and `run(args)`. A run starts its own dev
server(s) (tuned and untuned by default) or uses a running one on this machine, runs each scenario
against each, and writes `result.json`, `summary.md` and `bench.png` to the output directory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import temporalio

from workers.bench import procstats, report, targets
from workers.bench.scenarios import BATCH, BY_NAME, DEFAULT, SCENARIOS, select
from workers.bench.server import EXTERNAL, TUNED, UNTUNED, Server, dev_server, external_server
from workers.bench.settings import BenchSettings, parse_levels, require_loopback
from workers.bench.stack import LAYOUTS, ONE
from workers.temporal_binaries import temporal_cli

SCHEMA = "durapay-bench/1"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    names = ",".join(scenario.name for scenario in SCENARIOS)
    parser.add_argument(
        "--server",
        choices=[TUNED, UNTUNED, "both"],
        default="both",
        help="dev server(s) to start: tuned with dev_server_args(), untuned defaults, or both (default)",
    )
    parser.add_argument("--address", help="use this running server (on this machine) instead of starting one")
    parser.add_argument("--namespace", default="default", help="namespace on --address (default: default)")
    parser.add_argument(
        "--scenarios",
        default=",".join(DEFAULT),
        help=f"comma-separated, any of: {names} (default: %(default)s)",
    )
    parser.add_argument(
        "--durapay-layout",
        default=ONE,
        help=f"comma-separated, any of: {','.join(LAYOUTS)}: the processes each durapay scenario named "
        "in --scenarios runs in (one: API and worker in one process; split: `durapay api` + "
        "`durapay worker`; split2: the API and two workers) (default: %(default)s)",
    )
    parser.add_argument(
        "--provider-latency-ms",
        type=float,
        default=300.0,
        help="how long the fake Stripe takes to answer each call in the durapay_stripe scenarios",
    )
    parser.add_argument(
        "--concurrency",
        default="1,2,4,8,16,32",
        help="closed-loop concurrency levels; a sweep stops early once throughput stops rising",
    )
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds per level before measuring")
    parser.add_argument("--duration", type=float, default=4.0, help="measured seconds per level")
    parser.add_argument(
        "--op-timeout", type=float, default=60.0, help="seconds before one payment counts as failed"
    )
    parser.add_argument(
        "--signal-n",
        type=int,
        default=200,
        help="payments per path (webhook, raw signal) in the webhooks scenario",
    )
    parser.add_argument("--scale-n", type=int, default=10_000, help="payments waiting for 3-D Secure at once")
    parser.add_argument(
        "--batch-concurrency", type=int, default=32, help="in-flight calls in the signal/scale batches"
    )
    parser.add_argument(
        "--batch-timeout", type=float, default=300.0, help="seconds each signal/scale phase may take"
    )
    parser.add_argument("--out", type=Path, help="output directory (default: bench-results/<UTC time>)")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG (no matplotlib needed)")


def settings_from_args(args: argparse.Namespace) -> BenchSettings:
    names = [name.strip() for name in args.scenarios.split(",") if name.strip()]
    layouts = [layout.strip() for layout in args.durapay_layout.split(",") if layout.strip()]
    scenarios = select(names, layouts)
    if args.address:
        servers: tuple[str, ...] = (EXTERNAL,)
    else:
        servers = (TUNED, UNTUNED) if args.server == "both" else (args.server,)
    positive = {
        "--signal-n": args.signal_n,
        "--scale-n": args.scale_n,
        "--batch-concurrency": args.batch_concurrency,
    }
    for flag, value in positive.items():
        if value < 1:
            raise ValueError(f"{flag} must be at least 1")
    durations = {
        "--duration": args.duration,
        "--op-timeout": args.op_timeout,
        "--batch-timeout": args.batch_timeout,
    }
    for flag, seconds in durations.items():
        if seconds <= 0:
            raise ValueError(f"{flag} must be positive")
    if args.warmup < 0 or args.provider_latency_ms < 0:
        raise ValueError("--warmup and --provider-latency-ms must not be negative")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return BenchSettings(
        servers=servers,
        address=require_loopback(args.address) if args.address else None,
        namespace=args.namespace,
        scenarios=scenarios,
        levels=parse_levels(args.concurrency),
        warmup_s=args.warmup,
        duration_s=args.duration,
        op_timeout_s=args.op_timeout,
        signal_n=args.signal_n,
        scale_n=args.scale_n,
        batch_concurrency=args.batch_concurrency,
        batch_timeout_s=args.batch_timeout,
        out_dir=args.out or Path("bench-results") / stamp,
        plot=not args.no_plot,
        provider_latency_ms=args.provider_latency_ms,
    )


def _command() -> str:
    """How this run was started, as one would type it again."""
    program = Path(sys.argv[0])
    head = ["python", "-m", "workers.bench"] if program.name == "__main__.py" else [program.name]
    return shlex.join([*head, *sys.argv[1:]])


def _machine() -> dict[str, Any]:
    cpu_model = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    cli = subprocess.run([temporal_cli(), "--version"], capture_output=True, text=True, timeout=30)
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "temporalio": temporalio.__version__,
        "temporal_cli": cli.stdout.strip(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


class _Sharing:
    """How much of the machine a scenario had: CPU used meanwhile by processes that are not the
    bench's (other users' work on a shared machine) shows up here instead of being guessed at.
    A server given with --address is not the bench's either: its CPU counts as other processes'."""

    def __init__(self, server_pids: list[int]) -> None:
        self._server_pids = server_pids
        self._started = time.monotonic()
        self._busy = procstats.machine_busy_seconds()
        self._ours = self._our_cpu()

    def _our_cpu(self) -> float:
        return procstats.own_cpu_seconds() + sum(procstats.cpu_seconds(pid) for pid in self._server_pids)

    def done(self, ours_elsewhere: float = 0.0) -> dict[str, float]:
        """`ours_elsewhere`: CPU the scenario caused in processes it did not start (its database)."""
        wall = time.monotonic() - self._started
        busy = procstats.machine_busy_seconds() - self._busy
        others = max(0.0, busy - (self._our_cpu() - self._ours) - ours_elsewhere)
        cores = os.cpu_count() or 1
        return {
            "wall_s": round(wall, 1),
            "load_average_1m": round(os.getloadavg()[0], 2),
            "machine_cpu_busy": round(busy / (wall * cores), 3),  # fraction of all cores
            "other_processes_cpu": round(others / (wall * cores), 3),  # of which not the bench's
        }


@contextlib.asynccontextmanager
async def _server(settings: BenchSettings, variant: str, log_dir: Path) -> AsyncIterator[Server]:
    if variant == EXTERNAL:
        assert settings.address is not None
        async with external_server(settings.address, settings.namespace) as server:
            yield server
    else:
        async with dev_server(variant, log_dir / f"{variant}-server.log") as server:
            yield server


async def measure(settings: BenchSettings) -> dict[str, Any]:
    """Run every selected scenario on every selected server; return the result document."""
    run_id = uuid.uuid4().hex[:8]
    log_dir = settings.out_dir / "logs"
    started = time.monotonic()
    document: dict[str, Any] = {
        "schema": SCHEMA,
        "run_id": run_id,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": _command(),
        "machine": _machine(),
        "settings": {
            key: (str(value) if isinstance(value, Path) else value) for key, value in asdict(settings).items()
        },
        "servers": {},
        "scenarios": {name: BY_NAME[name].title for name in settings.scenarios},
        "results": {},
        "errors": [],
        "skipped": [],
    }
    async with contextlib.AsyncExitStack() as running:
        servers = [await running.enter_async_context(_server(settings, v, log_dir)) for v in settings.servers]
        for server in servers:
            document["servers"][server.variant] = {
                "address": server.address,
                "dynamic_config": server.dynamic_config,
            }
            document["results"][server.variant] = {}
        server_pids = [server.pid for server in servers if server.pid is not None]
        for name in settings.scenarios:
            scenario = BY_NAME[name]
            # A scenario runs on every server back to back, not one server's whole list after the
            # other's: on a shared machine both then see the same neighbours, and their ratio holds.
            for index, server in enumerate(servers):
                if scenario.kind == BATCH and index > 0:
                    reason = "batch scenarios run on the first server only"
                    document["skipped"].append({"scenario": name, "server": server.variant, "reason": reason})
                    continue
                print(f"[bench] {server.variant}: {name} — {scenario.title}", flush=True)
                sharing = _Sharing(server_pids)
                try:
                    result = await scenario.run(server, settings, run_id, log_dir)
                except Exception as exc:  # one broken scenario must not lose the others' numbers
                    error = f"{type(exc).__name__}: {exc}"
                    document["errors"].append({"scenario": name, "server": server.variant, "error": error})
                    print(f"[bench]   failed: {exc}", flush=True)
                    continue
                if "levels" in result:
                    result = report.summarize_sweep(result)
                    print(report.level_table(result["levels"]), flush=True)
                result["machine_during"] = sharing.done(ours_elsewhere=result.get("store_cpu_s", 0.0))
                document["results"][server.variant][name] = result
    document["ratios"] = report.ratios(document["results"])
    document["targets"] = targets.targets(document["results"], document["machine"]["cpus"] or 1)
    document["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    document["wall_s"] = round(time.monotonic() - started, 1)
    return document


def write_outputs(document: dict[str, Any], settings: BenchSettings) -> dict[str, Path]:
    settings.out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": settings.out_dir / "result.json", "summary": settings.out_dir / "summary.md"}
    if settings.plot:
        paths["plot"] = report.plot(document["results"], settings.out_dir / "bench.png")
        document["plot"] = paths["plot"].name
    paths["json"].write_text(json.dumps(document, indent=2) + "\n")
    paths["summary"].write_text(report.markdown(document))
    return paths


async def run(args: argparse.Namespace) -> int:
    try:
        settings = settings_from_args(args)
    except ValueError as exc:
        print(f"durapay bench: {exc}", file=sys.stderr)
        return 2
    # SIGTERM (CI timeouts, `kill`) cancels like Ctrl-C does, so the dev servers, workers and API
    # the run started are stopped on the way out instead of being left behind.
    loop, task = asyncio.get_running_loop(), asyncio.current_task()
    assert task is not None
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        document = await measure(settings)
    except asyncio.CancelledError:
        print("durapay bench: interrupted; everything it started is stopped", file=sys.stderr)
        return 130
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
    paths = write_outputs(document, settings)
    print(report.markdown(document))
    for kind, path in paths.items():
        print(f"[bench] {kind}: {path}")
    return 1 if document["errors"] else 0
