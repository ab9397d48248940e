"""Finding numbers in a result document: by dotted path, the engine's best case of a run, and the
layout variants of a durapay scenario."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workers.bench.stack import LAYOUTS, scenario_name

BASELINE = "engine_baseline"
BEST_VARIANTS = ("engine_best_eager", "engine_best_uws")


def lookup(document: Mapping[str, Any], path: str) -> Any:
    """`lookup(doc, "tuned.engine_baseline.saturation.throughput_per_s")`; None if absent."""
    node: Any = document
    for key in path.split("."):
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


def layout_variants(scenarios: Mapping[str, Any], base: str) -> list[str]:
    """`base` and its layout variants (`base_split`, ...) that this run has, one-process first."""
    names = [scenario_name(base, layout) for layout in LAYOUTS]
    return [name for name in names if name in scenarios]


def best_engine_variant(server_results: Mapping[str, Any]) -> str | None:
    """The engine best case is whichever fast pattern answered a lone caller quickest in this run:
    eager start and update-with-start cannot be combined, so both are measured."""
    candidates = [
        name for name in BEST_VARIANTS if lookup(server_results, f"{name}.concurrency_1.latency_ms.p50")
    ]
    if not candidates:
        return None
    return min(candidates, key=lambda name: server_results[name]["concurrency_1"]["latency_ms"]["p50"])
