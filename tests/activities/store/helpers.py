"""Fixtures and builders shared by the store, order-ledger, fraud and store-activity tests.
Test modules import the fixtures they use by name."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
import pytest_asyncio
from sqlalchemy import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from activities.store.db import create_engine, migrate
from activities.store.repository import PaymentStore
from workflows.domain import CaptureMethod, CardMethod, PaymentStatus, PaymentView
from workflows.money import Amount

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def _isolated_pg_url(pg_url: str) -> Iterator[str]:
    """`pg_url` with a schema of its own on the search path: every test starts from an empty
    database (and migrates it) without creating a database per test."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    url = make_url(pg_url)
    dsn = f"host={url.host} port={url.port} user={url.username} dbname={url.database}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    yield url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """An empty, unmigrated database on each dialect (for migration tests)."""
    if request.param == "sqlite":
        yield request.getfixturevalue("sqlite_url")
    else:
        yield from _isolated_pg_url(request.getfixturevalue("pg_url"))


@pytest_asyncio.fixture(scope="session", params=["sqlite", "postgresql"])
async def engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[AsyncEngine]:
    """A migrated database per dialect, shared by the session: tests keep to their own rows
    through the `unique` fixture, so they need no fresh schema each (migrating is the slow part)."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('store') / 'durapay.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    await migrate(url)
    engine = create_engine(url)
    yield engine
    await engine.dispose()


@pytest.fixture
def store(engine: AsyncEngine) -> PaymentStore:
    return PaymentStore(engine)


def make_view(payment_id: str, **changes: Any) -> PaymentView:
    """A card payment at version 1; `changes` override any field."""
    fields: dict[str, Any] = dict(
        id=payment_id,
        order_id=f"ord_{payment_id}",
        gateway="mock",
        status=PaymentStatus.PENDING,
        amount=Amount(minor=4999, currency="USD"),
        capture_method=CaptureMethod.AUTOMATIC,
        method=CardMethod(token="tok_visa", last4="4242", brand="visa", fingerprint=f"fp_{payment_id}"),
        customer_id=f"cus_{payment_id}",
        customer_ip="203.0.113.7",
        created_at=T0,
        updated_at=T0,
        version=1,
    )
    fields.update(changes)
    return PaymentView(**fields)
