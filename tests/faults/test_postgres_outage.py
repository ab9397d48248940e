"""PostgreSQL down for ~30 s (DURAPAY_FAULTS_PG_OUTAGE_SECONDS) while payments are in flight, and
new ones arrive during the outage. It is a private instance (initdb into a temporary directory, a
port of its own), so stopping it disturbs no other test on the machine.

The workflows' store and order steps retry until the database answers; the API answers 5xx meanwhile
and the merchant retries with the same key; webhooks the receiver could not record are refused and
come again, as Stripe sends them again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.faults.harness import AMOUNT_MINOR, Expect, InFlight, fault_stack, gather_all
from tests.faults.invariants import check_run
from tests.faults.processes import (
    PrivatePostgres,
    TemporalServer,
    private_postgres_unavailable,
)
from tests.faults.report import PG_OUTAGE_SECONDS
from workflows.domain import PaymentStatus

pytestmark = pytest.mark.faults

ARRIVING_DURING_OUTAGE = 2


@pytest_asyncio.fixture
async def private_postgres() -> AsyncIterator[PrivatePostgres]:
    reason = private_postgres_unavailable()
    if reason:
        pytest.skip(f"cannot start a private PostgreSQL to stop: {reason}")
    postgres = PrivatePostgres()
    try:
        await postgres.init()
        yield postgres
    finally:
        await postgres.destroy()


async def test_postgres_down_mid_flight(
    private_postgres: PrivatePostgres,
    temporal_server: TemporalServer,
    tmp_path: Path,
    task_queue: str,
    unique: str,
    run: int,
) -> None:
    async with fault_stack(
        temporal_address=temporal_server.address,
        db_url=private_postgres.url,
        workdir=tmp_path,
        task_queue=task_queue,
    ) as stack:
        in_flight = await InFlight.start(stack, unique)
        loop = asyncio.get_running_loop()

        await private_postgres.stop()
        back_at = loop.time() + PG_OUTAGE_SECONDS
        stack.fault(f"PostgreSQL stopped for {PG_OUTAGE_SECONDS} s")
        keys = [f"{unique}-during-{n}" for n in range(ARRIVING_DURING_OUTAGE)]
        arriving = [asyncio.create_task(stack.merchant.pay(key)) for key in keys]
        await in_flight.stripe_answered(stack)
        # The outage itself: a fixed length on purpose, nothing to wait for.
        await asyncio.sleep(max(0.0, back_at - loop.time()))
        await private_postgres.start()
        stack.fault_over()

        await in_flight.answers()
        await gather_all(*arriving)
        expected = in_flight.expected + [
            Expect(stack.payment_id(key), PaymentStatus.PAID, AMOUNT_MINOR) for key in keys
        ]
        await check_run(stack, expected, scenario="PostgreSQL outage")
