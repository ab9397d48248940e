"""The API while its database is unreachable: 503 with Retry-After (retry with the same key, the
provider sends the webhook again), not a 500. Found by the fault-injection suite (tests/faults)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from api.payments import derive_payment_id
from api.ports import StoreUnavailable
from tests.faults.processes import free_port
from workers.api_server import StorePorts, start_api
from workers.config import load_config
from workers.worker import Runtime
from workflows.webhook_inbox import WebhookOutcome

API_KEY = "k" * 24


@pytest.fixture
async def unreachable_runtime() -> AsyncIterator[Runtime]:
    # Nothing listens on a port just freed: every connection attempt is refused at once.
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/durapay"
    config = load_config(
        environ={},
        use_default_file=False,
        overrides={
            "payment": {"mock": {"enabled": True, "webhook_secret": "whsec_store_outage_test"}},
            "api": {"port": 0, "api_keys": {"m1": API_KEY}, "rate_limiting": False},
            "database": {"url": url},
        },
    )
    async with await Runtime.open(config) as runtime:
        yield runtime


async def test_store_ports_report_an_unreachable_database(unreachable_runtime: Runtime) -> None:
    ports = StorePorts(unreachable_runtime.store)
    with pytest.raises(StoreUnavailable):
        await ports.get("pay_any")
    with pytest.raises(StoreUnavailable):
        await ports.record(
            gateway="mock",
            event_id="evt_1",
            payment_id="pay_any",
            verified=True,
            outcome=WebhookOutcome.SIGNALLED,
            event_type="payment.succeeded",
        )


async def test_api_answers_503_while_the_database_is_down(
    temporal_env: WorkflowEnvironment, unreachable_runtime: Runtime
) -> None:
    api = await start_api(temporal_env.client, unreachable_runtime.config, unreachable_runtime)
    try:
        async with httpx.AsyncClient(base_url=api.base_url) as http:
            response = await http.get(
                f"/v1/payments/{derive_payment_id('m1', 'any')}",
                headers={"Authorization": f"Bearer {API_KEY}"},
            )
    finally:
        await api.stop()
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "1"
    assert response.json()["code"] == "temporarily_unavailable"
