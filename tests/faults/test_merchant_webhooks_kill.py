"""A `durapay worker` killed with SIGKILL in the middle of a merchant webhook delivery: after a
restart every event is delivered, in order, none lost; the interrupted one may arrive twice, with
the same webhook-id. The worker is a real child process (tests/faults/processes.py)."""

from __future__ import annotations

import asyncio
import base64
import os
from pathlib import Path

import pytest
from aiohttp import web
from pydantic import SecretStr

from activities.merchant_webhooks import DeliveryStarter, MerchantEndpoint, first_status
from activities.store.db import create_engine, migrate
from activities.store.repository import PaymentStore
from tests.activities.store.helpers import make_view
from tests.faults.processes import WorkerProcess
from workers.merchant_endpoint import LocalMerchantEndpoint
from workflows.domain import PaymentStatus
from workflows.ledger_io import PaymentEventRecord, PaymentTransition
from workflows.merchant_events import merchant_events

pytestmark = pytest.mark.faults

SECRET = SecretStr("whsec_" + base64.b64encode(os.urandom(32)).decode())


class HangingOnce(LocalMerchantEndpoint):
    """Holds the first delivery open (the worker is killed meanwhile), then answers normally."""

    def __init__(self) -> None:
        super().__init__(SECRET)
        self.holding = asyncio.Event()
        self.release = asyncio.Event()

    async def _receive(self, request: web.Request) -> web.Response:
        if not self.holding.is_set():
            self.holding.set()
            await self.release.wait()
        return await super()._receive(request)


async def _until(check, timeout: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_a_worker_killed_mid_delivery_loses_and_reorders_nothing(
    temporal_env, task_queue, tmp_path: Path, unique
):
    db_url = f"sqlite+aiosqlite:///{tmp_path}/durapay.db"
    await migrate(db_url)
    engine = create_engine(db_url)
    store = PaymentStore(engine)
    payment_id = f"pay_{unique}"
    async with HangingOnce() as merchant:
        target = MerchantEndpoint(merchant.url, SECRET)
        for version, (status, types) in enumerate(
            [
                (PaymentStatus.PAID, ["payment.captured", "payment.completed"]),
                (PaymentStatus.PARTIALLY_REFUNDED, ["refund.succeeded"]),
            ],
            start=1,
        ):
            t = PaymentTransition(
                view=make_view(payment_id, status=status, version=version),
                events=[PaymentEventRecord(type=e) for e in types],
            )
            await store.record_transition(
                t, [(e, first_status(e, lambda _: target)) for e in merchant_events(t)]
            )
        expected = await store.pending_merchant_events(payment_id)
        assert len(expected) == 3

        client = temporal_env.client
        env = {
            "DURAPAY_TEMPORAL__ADDRESS": client.service_client.config.target_host,
            "DURAPAY_TEMPORAL__TASK_QUEUE": task_queue,
            "DURAPAY_DATABASE__URL": db_url,
            "DURAPAY_MERCHANT_WEBHOOKS__URL": merchant.url,
            "DURAPAY_MERCHANT_WEBHOOKS__SECRET": SECRET.get_secret_value(),
            "DURAPAY_WORKER__GRACEFUL_SHUTDOWN_SECONDS": "1",
            "DURAPAY_PAYMENT__MOCK__ENABLED": "true",
        }
        worker = WorkerProcess(env, tmp_path)
        await worker.start()
        try:
            await DeliveryStarter(client, task_queue)(payment_id)
            await asyncio.wait_for(merchant.holding.wait(), timeout=30)
            await worker.kill()  # mid-delivery: the request is open, nothing recorded yet
            merchant.release.set()
            await worker.start()
            await _until(
                lambda: set(merchant.ids()) == set(expected) and merchant.ids()[-1] == expected[-1], 60
            )
        finally:
            await worker.stop()
        received = merchant.ids()
        pending = await store.pending_merchant_events(payment_id)
        attempts = [len((await store.merchant_event(e)).attempts) for e in expected]  # type: ignore[union-attr]
    await engine.dispose()
    assert all(r.verified for r in merchant.received)
    # In order, each once, except the interrupted first one, which may come twice (same id).
    assert list(dict.fromkeys(received)) == expected
    assert received in (expected, [expected[0], *expected])
    assert pending == []
    assert attempts[1:] == [1, 1]
