"""Bench settings for tests that need one: the smallest run, with what a test cares about changed."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from workers.bench.settings import BenchSettings


def bench_settings(out_dir: Path = Path("unused"), **changes: Any) -> BenchSettings:
    smallest = BenchSettings(
        servers=("tuned",),
        address=None,
        namespace="default",
        scenarios=("durapay",),
        levels=(1,),
        warmup_s=0,
        duration_s=1,
        op_timeout_s=5,
        signal_n=1,
        scale_n=1,
        batch_concurrency=1,
        batch_timeout_s=5,
        out_dir=out_dir,
        plot=False,
    )
    return replace(smallest, **changes)
