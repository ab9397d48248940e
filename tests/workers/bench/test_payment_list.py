"""The million-row list benchmark, at a few thousand rows: it seeds through the real migrations,
its seeded rows are payments the store reads back, and every common query is timed."""

from __future__ import annotations

from workers.bench.payment_list import markdown, run


async def test_seeds_and_times_every_query(pg_url: str) -> None:
    report = await run(pg_url, rows=3000, runs=3, keep=False)
    assert report["rows"] == 3000
    assert len(report["queries"]) >= 10
    for name, figures in report["queries"].items():
        assert 0 < figures["p50_ms"] <= figures["p99_ms"] <= figures["max_ms"], name
    # Customer lookups are served by the list index made for them.
    assert "ix_payments_merchant_customer_id_created_at_id" in report["plans"]["customer_id"]
    assert "| newest 10 |" in markdown(report)
