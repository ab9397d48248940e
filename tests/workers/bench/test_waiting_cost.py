"""The waiting-cost measurement (workers/bench/waiting_cost.py): its whole-wait schedule on the
time-skipping server, and what it computes from the windows it measures."""

from __future__ import annotations

from workers.bench.waiting_cost import CASES, WholeWait, Window, report, schedule


async def test_whole_waits_count_the_checks_of_each_case() -> None:
    rows = {(row.case, row.wait_s): row for row in await schedule()}
    polled, notified, qr = (case.name for case in CASES)
    # Polled: 30, 90, 210, 450 s, then every 10 minutes; notified: once, halfway.
    assert [(rows[polled, w].lookups, rows[polled, w].timers) for w in (900, 3600)] == [(4, 5), (9, 10)]
    assert [(rows[notified, w].lookups, rows[notified, w].timers) for w in (900, 3600)] == [(1, 2), (1, 2)]
    assert rows[qr, 900].lookups == 4  # a QR code on the same gateway is still polled
    assert rows[notified, 900].events < rows[polled, 900].events


def test_report_takes_a_checks_cost_from_the_difference_of_the_windows() -> None:
    polled = Window(
        "polled",
        n=100,
        seconds=120.0,
        worker_cpu_ms=900.0,
        lookups=200,
        events=2400,
        machine_share_others=0.1,
    )
    notified = Window(
        "notified", n=100, seconds=120.0, worker_cpu_ms=100.0, lookups=0, events=0, machine_share_others=0.1
    )
    out = report([WholeWait("polled", 3600, events=112, timers=10, lookups=9)], [polled, notified])
    assert out["per_check_measured"] == {"cpu_ms": 4.0, "events": 12.0}
    # 9 checks an hour at 4 ms: 0.6 ms a minute.
    assert out["cpu_ms_per_payment_minute_computed"] == {"polled 3600 s": 0.6}
    assert out["whole_wait_measured"][0]["events_per_hour"] == 112.0
