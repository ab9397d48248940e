"""Engines and migrations. One code path for SQLite (aiosqlite, the embedded default) and
PostgreSQL (psycopg 3, production)."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event, make_url, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

# Connection execution option that marks a transaction as one that will write. SQLite then takes
# the write lock at BEGIN: a deferred transaction that read first and writes later fails with
# "database is locked" (SQLITE_BUSY_SNAPSHOT, which busy_timeout does not retry) instead of waiting.
_WRITE = "durapay_write"

# Any constant works: it only has to be the same in every process migrating the same database.
_MIGRATION_LOCK_ID = 0x647572617061  # "durapa"

SQLITE_BUSY_TIMEOUT_MS = 10_000


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(url: str, **overrides: Any) -> AsyncEngine:
    """An AsyncEngine for `url` with the pool and connection settings durapay relies on."""
    parsed = make_url(url)
    options: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database not in (None, "", ":memory:"):
            # A file database: a small pool is plenty, SQLite has a single writer anyway.
            options.update(pool_size=5, max_overflow=5, pool_timeout=30)
        # else: in-memory databases get SQLAlchemy's StaticPool (one shared connection).
    else:
        options.update(
            pool_size=10,
            max_overflow=10,
            pool_timeout=30,
            # Detect connections the server or a proxy closed while idle instead of failing a
            # payment step on them, and recycle before typical idle-kill timeouts.
            pool_pre_ping=True,
            pool_recycle=1800,
        )
    options.update(overrides)
    engine = create_async_engine(parsed, **options)
    if parsed.get_backend_name() == "sqlite":
        _configure_sqlite(engine)
    return engine


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take over BEGIN from the sqlite3 module: its legacy mode does not begin transactions
        # for SELECT or DDL, which breaks both read-then-write consistency and transactional
        # migrations. COMMIT / ROLLBACK are still issued by the driver.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            # First, so that everything below (and every later lock) waits instead of failing.
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode")
            # WAL: readers never block the writer and vice versa. It persists in the file, so
            # only the first connection switches (which needs a moment of exclusive access).
            if cursor.fetchone()[0].lower() != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")  # durable enough with WAL, far fewer fsyncs
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = "IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "DEFERRED"
        conn.exec_driver_sql(f"BEGIN {mode}")


@asynccontextmanager
async def write_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A transaction that is going to write: committed on success, rolled back on error.

    On SQLite it holds the database's write lock from the start, so read-modify-write sequences
    are serialized (other writers wait up to busy_timeout). On PostgreSQL it is an ordinary READ
    COMMITTED transaction; callers lock what they read with SELECT ... FOR UPDATE or use atomic
    upserts.
    """
    async with engine.connect() as conn:
        await conn.execution_options(**{_WRITE: True})
        async with conn.begin():
            yield conn


@asynccontextmanager
async def single_statement(engine: AsyncEngine, *, writes: bool) -> AsyncIterator[AsyncConnection]:
    """A connection for one statement, atomic on its own: on PostgreSQL in autocommit, which
    saves the BEGIN and the COMMIT (or ROLLBACK) round trips, about 40% of a point read's cost
    in the request path. On SQLite a write still takes `write_transaction` (its write lock up
    front); a read an ordinary connection. The caller commits nothing."""
    if engine.dialect.name != "postgresql":
        if writes:
            async with write_transaction(engine) as conn:
                yield conn
        else:
            async with engine.connect() as conn:
                yield conn
        return
    async with engine.connect() as conn:
        yield await conn.execution_options(isolation_level="AUTOCOMMIT")


async def migrate(url: str) -> None:
    """Bring the database at `url` to the latest schema (alembic `upgrade head`).

    Safe to call again, and from several processes at once: the upgrade runs in one transaction
    under a lock (PostgreSQL advisory lock; SQLite's write lock), so a second caller waits and
    then finds nothing to do.
    """
    engine = create_engine(url)
    try:
        # Alembic keeps its migration context in module globals: two upgrades interleaved in one
        # process (one event loop) would trample each other's, so they take turns here; across
        # processes the database lock below does the same.
        async with _in_process_lock(), write_transaction(engine) as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
            await conn.run_sync(_upgrade_head)
    finally:
        await engine.dispose()


_MIGRATION_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


def _in_process_lock() -> asyncio.Lock:
    """One lock per event loop: an asyncio.Lock may only be awaited on the loop it first waited on."""
    loop = asyncio.get_running_loop()
    lock = _MIGRATION_LOCKS.get(loop)
    if lock is None:
        lock = _MIGRATION_LOCKS[loop] = asyncio.Lock()
    return lock


def _upgrade_head(connection: Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # env.py runs on this connection, inside the caller's transaction, instead of opening its own.
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
