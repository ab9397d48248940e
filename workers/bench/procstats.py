"""CPU time and memory of a process, read from /proc so that any process we started (the Temporal
dev server, a worker) can be measured from outside, the same way as our own. Linux only, like the
rest of the harness's numbers."""

from __future__ import annotations

import os
import resource
from collections.abc import Sequence
from pathlib import Path

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used so far, all its threads included."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may contain spaces and parentheses: split after its closing one.
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / _CLOCK_TICKS


def _status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise LookupError(f"{key} not in /proc/{pid}/status")


def rss_bytes(pid: int) -> int:
    """Resident set size now."""
    return _status_kib(pid, "VmRSS") * 1024


def peak_rss_bytes(pid: int) -> int:
    """The highest resident set size the process has had."""
    return _status_kib(pid, "VmHWM") * 1024


def machine_busy_seconds() -> float:
    """CPU seconds all processes on the machine have used (every core, idle and I/O wait excluded)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _CLOCK_TICKS


def own_cpu_seconds() -> float:
    """This process and its finished children (engine hosts, durapay stacks once stopped)."""
    usages = (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN))
    return sum(usage.ru_utime + usage.ru_stime for usage in usages)


def memory_while_waiting(
    pids: Sequence[int], idle_bytes: int, waiting_bytes: int, waiting: int
) -> dict[str, float | None]:
    """RSS (summed over `pids`) before and with `waiting` payments open, in MB, and what each one
    added, in KB. `peak` sums each process's own highest RSS."""
    return {
        "idle": round(idle_bytes / 2**20, 1),
        "all_waiting": round(waiting_bytes / 2**20, 1),
        "peak": round(sum(peak_rss_bytes(pid) for pid in pids) / 2**20, 1),
        "per_waiting_payment_kb": round((waiting_bytes - idle_bytes) / 1024 / waiting, 1)
        if waiting
        else None,
    }
