"""The durapay scenarios' store: a PostgreSQL database of its own per scenario, dropped afterwards;
SQLite when asked for with DURAPAY_BENCH_STORE."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text

from activities.store.db import create_engine
from tests.conftest import PG_ADMIN_DSN
from tests.workers.bench.builders import bench_settings
from workers.bench.stack import STORE_ENV, bench_database, store_choice


def databases() -> set[str]:
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        return {row[0] for row in conn.execute("SELECT datname FROM pg_database")}


async def test_postgresql_by_default_created_for_the_scenario_and_dropped(tmp_path, unique, monkeypatch):
    monkeypatch.delenv(STORE_ENV, raising=False)
    tag = f"bench-{unique}-tuned-durapay".lower()
    async with bench_database(bench_settings(tmp_path), tag, "tuned-durapay") as url:
        assert url.startswith("postgresql+psycopg://") and tag.replace("-", "_") in databases()
        # Left open on purpose: the drop must not wait for (or fail on) a stack that kept a connection.
        engine = create_engine(url)
        async with engine.connect() as conn:
            assert await conn.scalar(text("SELECT 1")) == 1
    assert tag.replace("-", "_") not in databases()
    await engine.dispose()
    assert not (tmp_path / "db").exists()


async def test_sqlite_when_asked_for(tmp_path, monkeypatch):
    monkeypatch.setenv(STORE_ENV, "SQLite")
    async with bench_database(bench_settings(tmp_path), "bench-x-tuned-durapay", "tuned-durapay") as url:
        assert url == f"sqlite+aiosqlite:///{(tmp_path / 'db' / 'tuned-durapay.sqlite').resolve()}"


def test_an_unknown_store_is_refused(monkeypatch):
    monkeypatch.setenv(STORE_ENV, "mysql")
    with pytest.raises(ValueError, match="DURAPAY_BENCH_STORE"):
        store_choice()
