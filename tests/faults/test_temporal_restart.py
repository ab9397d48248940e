"""The Temporal server killed -9 while payments are in flight, kept down for a while
(DURAPAY_FAULTS_TEMPORAL_OUTAGE_SECONDS, longer than the Temporal client's own retries), and started
again on its database file. The worker and the API keep running and must reconnect by themselves;
the merchant retries what failed with the same Idempotency-Key, and Stripe sends again the webhooks
the receiver could not hand to Temporal."""

from __future__ import annotations

import asyncio

import pytest

from tests.faults.harness import AMOUNT_MINOR, Expect, FaultStack, InFlight, gather_all
from tests.faults.invariants import check_run
from tests.faults.processes import TemporalServer
from tests.faults.report import TEMPORAL_OUTAGE_SECONDS
from workflows.domain import PaymentStatus

pytestmark = pytest.mark.faults

ARRIVING_DURING_OUTAGE = 2


async def test_temporal_restarted_mid_flight(
    stack: FaultStack, temporal_server: TemporalServer, unique: str, run: int
) -> None:
    in_flight = await InFlight.start(stack, unique)
    loop = asyncio.get_running_loop()

    await temporal_server.crash()
    back_at = loop.time() + TEMPORAL_OUTAGE_SECONDS
    stack.fault(f"Temporal server killed -9, restarted {TEMPORAL_OUTAGE_SECONDS} s later")
    keys = [f"{unique}-during-{n}" for n in range(ARRIVING_DURING_OUTAGE)]
    arriving = [asyncio.create_task(stack.merchant.pay(key)) for key in keys]
    # Stripe finishes the held calls meanwhile: the worker's reports and the webhooks about them
    # meet a dead server.
    await in_flight.stripe_answered(stack)
    # The outage itself: a fixed length on purpose, nothing to wait for.
    await asyncio.sleep(max(0.0, back_at - loop.time()))
    await temporal_server.start()
    stack.fault_over()

    await in_flight.answers()
    await gather_all(*arriving)
    expected = in_flight.expected + [
        Expect(stack.payment_id(key), PaymentStatus.PAID, AMOUNT_MINOR) for key in keys
    ]
    await check_run(stack, expected, scenario="Temporal server kill -9")
