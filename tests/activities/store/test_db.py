import asyncio

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect, text

from activities.store.db import MIGRATIONS_DIR, create_engine, migrate, single_statement, write_transaction
from activities.store.tables import metadata
from tests.activities.store.helpers import db_url

TABLES = {
    "payments",
    "payment_events",
    "orders",
    "webhook_inbox",
    "rate_limit_hits",
    "customers",
    "customer_gateway_accounts",
    "saved_payment_methods",
    "merchant_events",
    "merchant_event_attempts",
    "bank_statement_lines",
    "bank_payouts_done",
}
HEAD = "0004"


async def _state(url: str) -> tuple[set[str], str | None]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
            revision = await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())
        return tables, revision
    finally:
        await engine.dispose()


async def test_migrate_creates_the_schema_and_is_safe_to_repeat(db_url: str) -> None:
    await migrate(db_url)
    tables, revision = await _state(db_url)
    assert tables >= TABLES
    assert revision == HEAD

    await migrate(db_url)
    assert await _state(db_url) == (tables, revision)


async def test_concurrent_migrations_do_not_collide(db_url: str) -> None:
    await asyncio.gather(migrate(db_url), migrate(db_url), migrate(db_url))
    tables, revision = await _state(db_url)
    assert tables >= TABLES and revision == HEAD


async def test_migrations_match_the_table_definitions(db_url: str) -> None:
    await migrate(db_url)
    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda c: compare_metadata(
                    MigrationContext.configure(c, opts={"compare_type": True}), metadata
                )
            )
    finally:
        await engine.dispose()
    assert diff == []


async def test_downgrade_removes_everything_and_upgrade_restores_it(db_url: str) -> None:
    await migrate(db_url)

    def downgrade(connection: Connection) -> None:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        config.attributes["connection"] = connection
        command.downgrade(config, "base")

    engine = create_engine(db_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(downgrade)
    finally:
        await engine.dispose()
    tables, revision = await _state(db_url)
    assert not (TABLES & tables) and revision is None

    await migrate(db_url)
    assert (await _state(db_url))[0] >= TABLES


async def test_sqlite_connections_use_wal_busy_timeout_and_foreign_keys(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    try:
        async with engine.connect() as conn:
            assert (await conn.scalar(text("PRAGMA journal_mode"))) == "wal"
            assert (await conn.scalar(text("PRAGMA busy_timeout"))) >= 1000
            assert (await conn.scalar(text("PRAGMA foreign_keys"))) == 1
    finally:
        await engine.dispose()


async def test_postgres_engine_replaces_a_connection_the_server_dropped(pg_url: str) -> None:
    engine = create_engine(pg_url)
    try:
        async with engine.connect() as conn:
            pid = await conn.scalar(text("SELECT pg_backend_pid()"))
        # The pooled connection dies while idle (server restart, proxy timeout, ...).
        admin = create_engine(pg_url)
        async with admin.connect() as conn:
            await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        await admin.dispose()
        async with engine.connect() as conn:
            assert await conn.scalar(text("SELECT 1")) == 1
    finally:
        await engine.dispose()


@pytest.mark.parametrize("url", ["sqlite+aiosqlite://", "sqlite+aiosqlite:///:memory:"])
async def test_in_memory_sqlite_works_on_one_shared_connection(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (x INTEGER)"))
        async with engine.connect() as conn:
            assert (await conn.scalar(text("SELECT count(*) FROM t"))) == 0
    finally:
        await engine.dispose()


async def test_a_connection_back_from_a_single_statement_is_transactional_again(pg_url: str) -> None:
    """single_statement runs in autocommit; the pool must hand the connection to the next
    write_transaction without it, or that transaction's rollback would undo nothing."""
    engine = create_engine(pg_url, pool_size=1, max_overflow=0)  # one connection: the same one again
    try:
        async with single_statement(engine, writes=True) as conn:
            await conn.execute(text("CREATE TEMPORARY TABLE single_statement_probe (x INTEGER)"))
            pid = await conn.scalar(text("SELECT pg_backend_pid()"))
        with pytest.raises(RuntimeError):
            async with write_transaction(engine) as conn:
                assert await conn.scalar(text("SELECT pg_backend_pid()")) == pid
                await conn.execute(text("INSERT INTO single_statement_probe VALUES (1)"))
                raise RuntimeError("rolled back")
        async with single_statement(engine, writes=False) as conn:
            assert await conn.scalar(text("SELECT count(*) FROM single_statement_probe")) == 0
    finally:
        await engine.dispose()
