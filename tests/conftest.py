"""Shared fixtures: one real Temporal dev server and one time-skipping test server per session,
a PostgreSQL database per session, and a fresh task queue for every test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import psycopg
import pytest
import pytest_asyncio
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from workers.temporal_binaries import dev_server_args, start_time_skipping, temporal_cli
from workflows.search_attributes import ALL as SEARCH_ATTRIBUTES

PG_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"


@pytest_asyncio.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    """The real dev server (the same binary `durapay dev` runs), tuned like the local stack."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(),
        data_converter=pydantic_data_converter,
        search_attributes=SEARCH_ATTRIBUTES,
        dev_server_extra_args=dev_server_args(),
    )
    yield env
    await env.shutdown()


@pytest_asyncio.fixture
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping server per test: its clock is shared by everything on it, and a workflow
    left waiting by one test (its worker gone) would stop time from skipping for the next."""
    env = await start_time_skipping()
    yield env
    await env.shutdown()


@pytest.fixture
def task_queue(request: pytest.FixtureRequest) -> str:
    return f"tq-{request.node.name[:40]}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def unique() -> str:
    """A short random suffix for ids (payments, orders) so tests never share state."""
    return uuid.uuid4().hex[:12]


@pytest.fixture(scope="session")
def pg_url() -> str:
    """A fresh, empty PostgreSQL database for this session, as an SQLAlchemy async URL."""
    name = f"durapay_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'durapay.db'}"
