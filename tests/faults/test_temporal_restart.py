"""The Temporal server killed -9 while payments are in flight, and started again on its database
file. The worker and the API keep running and must reconnect by themselves; the merchant retries
whatever failed with the same Idempotency-Key."""

from __future__ import annotations

import pytest

from tests.faults.harness import FaultStack, InFlight
from tests.faults.invariants import check_run
from tests.faults.processes import TemporalServer
from tests.faults.report import FIGURES

pytestmark = pytest.mark.faults


async def test_temporal_restarted_mid_flight(
    stack: FaultStack, temporal_server: TemporalServer, unique: str, run: int
) -> None:
    in_flight = await InFlight.start(stack, unique)

    await temporal_server.crash()
    FIGURES.faults["Temporal server killed -9 and restarted"] += 1
    # Down until Stripe has done the work: the worker's reports of it meet a dead server.
    await in_flight.stripe_answered(stack)
    await temporal_server.start()

    await in_flight.answers()
    await check_run(stack, in_flight.expected, scenario="Temporal server kill -9")
