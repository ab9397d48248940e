"""Fixtures of the fault-injection suite: a Temporal dev server of its own with file persistence
(one test restarts it), a PostgreSQL database made for the run on the shared cluster, and the
summary table printed at the end of a run that executed any of these tests."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest
import pytest_asyncio

from tests.conftest import PG_ADMIN_DSN
from tests.faults.harness import FaultStack, fault_stack
from tests.faults.processes import TemporalServer
from tests.faults.report import FIGURES, REPORT_FILE, RUNS


@pytest_asyncio.fixture(scope="session")
async def temporal_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[TemporalServer]:
    server = TemporalServer(tmp_path_factory.mktemp("faults-temporal"))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture(scope="session")
def faults_db_url() -> Iterator[str]:
    """A database for the whole faults run on the shared cluster (127.0.0.1:5432), dropped after."""
    name = f"durapay_faults_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest_asyncio.fixture
async def stack(
    temporal_server: TemporalServer, faults_db_url: str, tmp_path: Path, task_queue: str
) -> AsyncIterator[FaultStack]:
    async with fault_stack(
        temporal_address=temporal_server.address,
        db_url=faults_db_url,
        workdir=tmp_path,
        task_queue=task_queue,
    ) as running:
        yield running


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # `DURAPAY_FAULTS_RUNS=n` runs every scenario n times.
    if "run" in metafunc.fixturenames:
        metafunc.parametrize("run", range(RUNS))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not FIGURES.runs:
        return
    table = FIGURES.table()
    terminalreporter.write_sep("=", "durapay fault-injection figures")
    terminalreporter.write_line(table)
    if REPORT_FILE:
        Path(REPORT_FILE).write_text(table + "\n")
