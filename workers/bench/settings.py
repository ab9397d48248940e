"""What one bench run does: which servers, which scenarios, how much load, where results go."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BenchSettings:
    servers: tuple[str, ...]  # dev server variants to start ("tuned", "untuned"), or ("external",)
    address: str | None  # a running server to use instead of starting one (loopback only)
    namespace: str
    scenarios: tuple[str, ...]
    levels: tuple[int, ...]  # closed-loop concurrencies, ascending
    warmup_s: float
    duration_s: float
    op_timeout_s: float
    signal_n: int
    scale_n: int
    batch_concurrency: int
    batch_timeout_s: float
    out_dir: Path
    plot: bool
    provider_latency_ms: float = 300.0  # the fake provider's answer time in the *_stripe scenarios


def parse_levels(text: str) -> tuple[int, ...]:
    levels = sorted({int(part) for part in text.split(",") if part.strip()})
    if not levels or levels[0] < 1:
        raise ValueError(f"concurrency levels must be positive integers, got {text!r}")
    return tuple(levels)


def require_loopback(address: str) -> str:
    """The harness sends traffic only to this machine: a benchmark must never load a shared server."""
    host = address.rsplit(":", 1)[0].strip("[]")
    if host != "localhost":
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ValueError(
                f"--address must be on this machine (127.0.0.1, ::1 or localhost), got {address!r}"
            )
    return address
