"""Runs an engine scenario in its own process (`workers.bench.host`) and returns its result."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from workers.bench.host import SWEEP_SCENARIOS, EngineSpec
from workers.bench.server import Server, child_env, stop_process
from workers.bench.settings import BenchSettings

# Room for process start-up, worker shutdown and history fetches on a loaded machine.
_HOST_OVERHEAD_S = 120.0


def spec_for(scenario: str, server: Server, settings: BenchSettings, run_id: str) -> EngineSpec:
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
        count=settings.scale_n if scenario == "engine_scale" else 0,
        batch_concurrency=settings.batch_concurrency,
        batch_timeout_s=settings.batch_timeout_s,
    )


def _time_budget(spec: EngineSpec) -> float:
    if spec.scenario in SWEEP_SCENARIOS:
        per_level = spec.warmup_s + spec.duration_s + spec.op_timeout_s
        return len(spec.levels) * per_level + _HOST_OVERHEAD_S
    # Scale: start, then signal and wait for the results; each phase is bounded on its own.
    return 2 * spec.batch_timeout_s + _HOST_OVERHEAD_S


async def run_engine_scenario(spec: EngineSpec, log_path: Path) -> dict[str, Any]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "workers.bench.host",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
            env=child_env(),
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
