"""The figures the fault suite gathers while it runs, and the table it prints at the end
(RELIABILITY.md quotes it).

Knobs (environment):
- `DURAPAY_FAULTS_RUNS` (default 1): how many times each scenario runs;
- `DURAPAY_FAULTS_PG_OUTAGE_SECONDS` (default 30): how long PostgreSQL stays down;
- `DURAPAY_FAULTS_TEMPORAL_OUTAGE_SECONDS` (default 15): how long the Temporal server stays down;
- `DURAPAY_FAULTS_SLOW=1`: also run the scenarios that take minutes by design;
- `DURAPAY_FAULTS_REPORT`: a file to write the table to as well.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field


def _positive_int(name: str, default: int) -> int:
    value = int(os.environ.get(name, default))
    if value < 1:
        raise ValueError(f"{name} must be at least 1, not {value}")
    return value


RUNS = _positive_int("DURAPAY_FAULTS_RUNS", 1)
PG_OUTAGE_SECONDS = _positive_int("DURAPAY_FAULTS_PG_OUTAGE_SECONDS", 30)
# Longer than the Temporal client's own retries (10 s), so that callers see the outage.
TEMPORAL_OUTAGE_SECONDS = _positive_int("DURAPAY_FAULTS_TEMPORAL_OUTAGE_SECONDS", 15)
SLOW = os.environ.get("DURAPAY_FAULTS_SLOW", "") not in ("", "0")
REPORT_FILE = os.environ.get("DURAPAY_FAULTS_REPORT")


@dataclass
class Figures:
    runs: Counter[str] = field(default_factory=Counter)  # per scenario
    payments: int = 0
    faults: Counter[str] = field(default_factory=Counter)  # injected, by kind
    charges_per_payment: Counter[int] = field(default_factory=Counter)  # charges -> payments
    outcomes: Counter[str] = field(default_factory=Counter)  # final payment status -> payments
    webhooks: int = 0  # distinct signed events the fake sent about our payments
    webhook_redeliveries: int = 0  # deliveries our receiver refused (5xx, no answer), sent again
    lost_webhooks: int = 0
    stuck_payments: int = 0
    double_charges: int = 0
    ledger_mismatches: int = 0  # captured / refunded totals that differ between Stripe and us
    merchant_retries: Counter[str] = field(default_factory=Counter)  # API answer -> retries with the same key
    gateway_replays: int = 0  # Stripe answered from its idempotency cache (a retry after a fault)
    # Per scenario, the longest wait from the end of the last fault to every payment settled.
    settle_s: dict[str, float] = field(default_factory=dict)

    def settled_after(self, scenario: str, seconds: float) -> None:
        self.settle_s[scenario] = max(seconds, self.settle_s.get(scenario, 0.0))

    def table(self) -> str:
        charges = ", ".join(
            f"{count} charge{'s' if count != 1 else ''}: {payments}"
            for count, payments in sorted(self.charges_per_payment.items())
        )
        rows = [
            (
                "runs",
                f"{sum(self.runs.values())} ("
                + ", ".join(f"{k} {v}" for k, v in sorted(self.runs.items()))
                + ")",
            ),
            ("payments", str(self.payments)),
            ("final statuses", ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items()))),
            ("faults injected", str(sum(self.faults.values()))),
            *((f"- {kind}", str(n)) for kind, n in sorted(self.faults.items())),
            ("charges per payment", charges),
            ("double charges", str(self.double_charges)),
            ("captured/refunded totals differing from Stripe", str(self.ledger_mismatches)),
            ("signed webhooks sent", str(self.webhooks)),
            ("webhook deliveries refused during a fault, redelivered", str(self.webhook_redeliveries)),
            ("lost webhooks", str(self.lost_webhooks)),
            ("stuck payments", str(self.stuck_payments)),
            (
                "merchant requests retried with the same key",
                f"{sum(self.merchant_retries.values())}"
                + (
                    " (" + ", ".join(f"{k}: {v}" for k, v in sorted(self.merchant_retries.items())) + ")"
                    if self.merchant_retries
                    else ""
                ),
            ),
            ("gateway calls answered from Stripe's idempotency cache", str(self.gateway_replays)),
            ("longest wait from the end of a fault to every payment settled", ""),
            *((f"- {scenario}", f"{seconds:.1f} s") for scenario, seconds in sorted(self.settle_s.items())),
        ]
        width = max(len(name) for name, _ in rows)
        lines = [f"| {'figure'.ljust(width)} | value |", f"|{'-' * (width + 2)}|-------|"]
        lines += [f"| {name.ljust(width)} | {value} |" for name, value in rows]
        return "\n".join(lines)


FIGURES = Figures()
