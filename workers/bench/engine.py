"""Runs an engine scenario in its own process (`workers.bench.host`) and returns its result."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import workers
from workers.bench.host import SWEEP_SCENARIOS, EngineSpec
from workers.bench.server import Server, stop_process
from workers.bench.settings import BenchSettings

# The host imports the project by package name; the bench may run from any directory.
_PROJECT_ROOT = str(Path(workers.__file__).resolve().parent.parent)
# Room for process start-up, worker shutdown and history fetches on a loaded machine.
_HOST_OVERHEAD_S = 120.0


def _host_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_PROJECT_ROOT, env.get("PYTHONPATH")) if p)
    return env


def spec_for(scenario: str, server: Server, settings: BenchSettings, run_id: str) -> EngineSpec:
    count = {"engine_signals": settings.signal_n, "engine_scale": settings.scale_n}.get(scenario, 0)
    return EngineSpec(
        scenario=scenario,
        address=server.address,
        namespace=server.namespace,
        task_queue=f"bench-{run_id}-{server.variant}-{scenario}",
        id_prefix=f"bench-{run_id}-{server.variant}-{scenario}",
        server_pid=server.pid,
        levels=list(settings.levels),
        warmup_s=settings.warmup_s,
        duration_s=settings.duration_s,
        op_timeout_s=settings.op_timeout_s,
        count=count,
        batch_concurrency=settings.batch_concurrency,
        batch_timeout_s=settings.batch_timeout_s,
    )


def _time_budget(spec: EngineSpec) -> float:
    if spec.scenario in SWEEP_SCENARIOS:
        per_level = spec.warmup_s + spec.duration_s + spec.op_timeout_s
        return len(spec.levels) * per_level + _HOST_OVERHEAD_S
    # signals: start, signal, drain; scale: start, complete. Each batch is bounded on its own.
    return 3 * spec.batch_timeout_s + _HOST_OVERHEAD_S


async def run_engine_scenario(spec: EngineSpec, log_path: Path) -> dict[str, Any]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "workers.bench.host",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
            env=_host_env(),
        )
        try:
            out, _ = await asyncio.wait_for(
                process.communicate(spec.model_dump_json().encode()), _time_budget(spec)
            )
        finally:
            await stop_process(process)
    if process.returncode != 0:
        raise RuntimeError(f"{spec.scenario} host exited with {process.returncode}; see {log_path}")
    return json.loads(out)
