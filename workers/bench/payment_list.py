"""Finding payments at a million rows: seed PostgreSQL with N payments and time the common
`GET /v1/payments` queries through the store's own code (`PaymentStore.page` / `position`, JSON
parsing included), p50 / p99 per query.

    python -m workers.bench.payment_list --database-url postgresql+psycopg://postgres@127.0.0.1/test

It works in a schema of its own (created, migrated with the real migrations, dropped afterwards
unless --keep), seeds with one `INSERT ... SELECT generate_series` (the migrations' indexes are
built afterwards, as a bulk load would), ANALYZEs, then runs each query `--runs` times with
random parameters. Results: a markdown table on stdout and JSON at --output.

The data is shaped like a busy deployment: 60% of the payments belong to one merchant (`default`,
the one queried: the worst case), the rest to nine others; 80% paid, the rest failed, refunded,
authorized, cancelled, pending; four gateways (Stripe 70%); 50,000 customers; 90 days of history.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import make_url, text

from activities.store.db import create_engine, migrate
from activities.store.repository import PaymentStore
from activities.store.tables import LIST_INDEX_FILTERS, list_index_name
from workflows.domain import PaymentStatus

MERCHANT = "default"
SMALL_MERCHANT = "m3"
CUSTOMERS = 50_000
HISTORY = timedelta(days=90)

# Row n's columns, from n alone: reproducible, and cheap for PostgreSQL to generate.
_SEED = """
INSERT INTO payments (
    id, merchant_id, order_id, gateway, status, amount_minor, currency, captured_minor,
    refunded_minor, capture_method, customer_id, provider_payment_id, method_type, card_last4,
    card_brand, view, version, created_at, updated_at
)
SELECT id, merchant, order_id, gateway, status, amount, 'USD', 0, 0, 'automatic', customer,
       provider_id, 'card', '4242', 'visa',
       jsonb_build_object(
           'id', id, 'merchant_id', merchant, 'order_id', order_id, 'gateway', gateway,
           'status', status, 'amount', jsonb_build_object('minor', amount, 'currency', 'USD'),
           'capture_method', 'automatic',
           'method', jsonb_build_object('type', 'card', 'token', 'pm_bench', 'last4', '4242', 'brand', 'visa'),
           'customer_id', customer, 'provider_payment_id', provider_id,
           'created_at', to_char(created AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
           'updated_at', to_char(created AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
           'version', 1
       ),
       1, created, created
FROM (
    SELECT n,
           -- md5 hex with 0 1 8 9 mapped into base32's alphabet: ids shaped like real ones.
           'pay_' || substr(translate(md5(n::text), '0189', 'wxyz'), 1, 26) AS id,
           CASE WHEN n % 100 < 60 THEN 'default' ELSE 'm' || (n % 9) END AS merchant,
           'order-' || n AS order_id,
           CASE WHEN n % 10 < 7 THEN 'stripe' WHEN n % 10 = 7 THEN 'mock'
                WHEN n % 10 = 8 THEN 'wechat_pay' ELSE 'alipay' END AS gateway,
           CASE WHEN (n / 10) % 100 < 80 THEN 'paid' WHEN (n / 10) % 100 < 90 THEN 'failed'
                WHEN (n / 10) % 100 < 93 THEN 'refunded' WHEN (n / 10) % 100 < 96 THEN 'authorized'
                WHEN (n / 10) % 100 < 98 THEN 'cancelled' ELSE 'pending' END AS status,
           100 + n % 100000 AS amount,
           'cus_' || (n * 7919 % :customers) AS customer,
           'pi_' || n AS provider_id,
           CAST(:start AS timestamptz) + (n * CAST(:step_us AS bigint)) * interval '1 microsecond' AS created
    FROM generate_series(CAST(1 AS bigint), :rows) AS n
) AS generated
"""

Query = Callable[[], Awaitable[Any]]


def _schema_url(url: str, schema: str) -> str:
    return make_url(url).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(False)


async def _seed(url: str, rows: int, start: datetime) -> dict[str, float]:
    """Seed `rows` payments, then build the list indexes (as after a bulk load); seconds taken."""
    engine = create_engine(url)
    timings: dict[str, float] = {}
    try:
        async with engine.begin() as conn:
            names = [list_index_name(column) for column in LIST_INDEX_FILTERS]
            definitions = {
                row.indexname: row.indexdef
                for row in await conn.execute(
                    text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'payments'")
                )
                if row.indexname != "pk_payments"
            }
            for name in definitions:
                await conn.execute(text(f'DROP INDEX "{name}"'))
            began = time.perf_counter()
            await conn.execute(
                text(_SEED),
                {
                    "rows": rows,
                    "customers": CUSTOMERS,
                    "start": start,
                    "step_us": int(HISTORY / timedelta(microseconds=1)) // rows,
                },
            )
            timings["insert_s"] = time.perf_counter() - began
            began = time.perf_counter()
            for definition in definitions.values():
                await conn.execute(text(definition))
            timings["indexes_s"] = time.perf_counter() - began
            assert set(names) <= set(definitions), "the migrations created the list indexes"
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            began = time.perf_counter()
            await conn.execute(text("VACUUM ANALYZE payments"))
            timings["analyze_s"] = time.perf_counter() - began
    finally:
        await engine.dispose()
    return timings


def _queries(store: PaymentStore, rows: int, start: datetime, rng: random.Random) -> dict[str, Query]:
    """The common questions, each drawing fresh random parameters per run."""

    def row() -> int:
        return rng.randrange(1, rows + 1)

    def default_row() -> int:  # a row of the queried merchant (n % 100 < 60)
        return row() // 100 * 100 + rng.randrange(60)

    step = HISTORY / rows

    async def deep_page() -> Any:
        after = await store.position(MERCHANT, payment_id_of(max(default_row(), 1)))
        assert after is not None
        return await store.page(MERCHANT, after=after, limit=10)

    return {
        "newest 10": lambda: store.page(MERCHANT, limit=10),
        "newest 100": lambda: store.page(MERCHANT, limit=100),
        "next page (starting_after, anywhere in 90 days)": deep_page,
        "status=failed": lambda: store.page(MERCHANT, status=PaymentStatus.FAILED, limit=10),
        "status=pending (2%)": lambda: store.page(MERCHANT, status=PaymentStatus.PENDING, limit=10),
        "gateway=alipay": lambda: store.page(MERCHANT, gateway="alipay", limit=10),
        "status=authorized & gateway=alipay (0.3%)": lambda: store.page(
            MERCHANT, status=PaymentStatus.AUTHORIZED, gateway="alipay", limit=10
        ),
        "customer_id": lambda: store.page(MERCHANT, customer_id=f"cus_{row() * 7919 % CUSTOMERS}", limit=10),
        "order_id": lambda: store.page(MERCHANT, order_id=f"order-{default_row()}", limit=10),
        "provider_payment_id": lambda: store.page(
            MERCHANT, provider_payment_id=f"pi_{default_row()}", limit=10
        ),
        "created in one day, 100": lambda: _one_day(store, start, step, rows, rng),
        # A merchant with 4% of the rows: its pages must not cost a walk past everyone else's.
        f"newest 10, merchant `{SMALL_MERCHANT}` (4%)": lambda: store.page(SMALL_MERCHANT, limit=10),
        f"status=pending, merchant `{SMALL_MERCHANT}`": lambda: store.page(
            SMALL_MERCHANT, status=PaymentStatus.PENDING, limit=10
        ),
    }


async def _one_day(
    store: PaymentStore, start: datetime, step: timedelta, rows: int, rng: random.Random
) -> Any:
    since = start + step * rng.randrange(rows) - timedelta(days=1)
    return await store.page(MERCHANT, created_gte=since, created_lt=since + timedelta(days=1), limit=100)


def payment_id_of(n: int) -> str:
    """Row n's id, as `_SEED` made it."""
    return "pay_" + hashlib.md5(str(n).encode()).hexdigest().translate(_ID_ALPHABET)[:26]


_ID_ALPHABET = str.maketrans("0189", "wxyz")


async def _measure(queries: dict[str, Query], runs: int) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    for name, query in queries.items():
        for _ in range(3):  # warm the pool and the plan cache
            await query()
        samples = []
        for _ in range(runs):
            began = time.perf_counter()
            await query()
            samples.append((time.perf_counter() - began) * 1000)
        samples.sort()
        results[name] = {
            "p50_ms": statistics.median(samples),
            "p99_ms": samples[min(len(samples) - 1, round(0.99 * (len(samples) - 1)))],
            "max_ms": samples[-1],
        }
    return results


async def _plans(url: str) -> dict[str, str]:
    """The index each filter's query uses, from EXPLAIN: proof the indexes serve them."""
    statements = {
        "newest": "SELECT view FROM payments WHERE merchant_id = 'default' ORDER BY created_at DESC, id DESC LIMIT 11",
        "status": "SELECT view FROM payments WHERE merchant_id = 'default' AND status = 'failed' "
        "ORDER BY created_at DESC, id DESC LIMIT 11",
        "next page": "SELECT view FROM payments WHERE merchant_id = 'default' AND (created_at, id) < "
        "(now() - interval '45 days', 'pay_m') ORDER BY created_at DESC, id DESC LIMIT 11",
        "small merchant": "SELECT view FROM payments WHERE merchant_id = 'm3' "
        "ORDER BY created_at DESC, id DESC LIMIT 11",
        "customer_id": "SELECT view FROM payments WHERE merchant_id = 'default' AND customer_id = 'cus_1' "
        "ORDER BY created_at DESC, id DESC LIMIT 11",
        "provider_payment_id": "SELECT view FROM payments WHERE merchant_id = 'default' "
        "AND provider_payment_id = 'pi_100' ORDER BY created_at DESC, id DESC LIMIT 11",
    }
    engine = create_engine(url)
    plans = {}
    try:
        async with engine.connect() as conn:
            for name, statement in statements.items():
                lines = [row[0] for row in await conn.execute(text(f"EXPLAIN {statement}"))]
                plans[name] = next((line.strip() for line in lines if " on " in line), lines[0])
    finally:
        await engine.dispose()
    return plans


async def run(url: str, rows: int, runs: int, keep: bool) -> dict[str, Any]:
    if make_url(url).get_backend_name() != "postgresql":
        raise SystemExit("this benchmark is for PostgreSQL (postgresql+psycopg://...)")
    schema = f"bench_list_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url)
    async with admin.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    scoped = _schema_url(url, schema)
    try:
        await migrate(scoped)
        start = datetime.now(UTC) - HISTORY
        seeding = await _seed(scoped, rows, start)
        engine = create_engine(scoped)
        try:
            store = PaymentStore(engine)
            results = await _measure(_queries(store, rows, start, random.Random(13)), runs)
        finally:
            await engine.dispose()
        report = {
            "rows": rows,
            "runs_per_query": runs,
            "seeding": seeding,
            "queries": results,
            "plans": await _plans(scoped),
            "postgresql": await _server_version(admin),
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
    finally:
        if not keep:
            async with admin.begin() as conn:
                await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()
    return report


async def _server_version(engine: Any) -> str:
    async with engine.connect() as conn:
        return str(await conn.scalar(text("SHOW server_version")))


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"{report['rows']:,} payments, {report['runs_per_query']} runs per query (PostgreSQL "
        f"{report['postgresql']}); seeding {report['seeding']['insert_s']:.0f} s, indexes "
        f"{report['seeding']['indexes_s']:.0f} s",
        "",
        "| query (merchant `default`, 60% of the rows, unless named) | p50 ms | p99 ms |",
        "|---|---:|---:|",
    ]
    for name, figures in report["queries"].items():
        lines.append(f"| {name} | {figures['p50_ms']:.2f} | {figures['p99_ms']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True, help="postgresql+psycopg://user@host/db")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=200, help="timed runs per query (default 200)")
    parser.add_argument("--output", type=Path, help="write the results as JSON here")
    parser.add_argument("--keep", action="store_true", help="keep the seeded schema")
    args = parser.parse_args(argv)
    report = asyncio.run(run(args.database_url, args.rows, args.runs, args.keep))
    if args.output is not None:
        args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(markdown(report))
    for name, plan in report["plans"].items():
        print(f"plan {name}: {plan}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
