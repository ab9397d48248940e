"""/livez and /readyz of the API and of the worker's health listener ([worker] health_bind), against
real outages: PostgreSQL and the Temporal dev server are reached through private proxies
(tests/tcp_proxy.py) that the test stops and starts; the servers themselves keep running."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest_asyncio
from sqlalchemy import make_url
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from tests.stack import Stack, running_stack
from tests.tcp_proxy import TcpProxy
from workers.health import PROBE_TIMEOUT_S, Readiness

# How soon a probe must notice: one probe timeout, plus a poll interval's slack.
NOTICE_WITHIN_S = PROBE_TIMEOUT_S + 3


@dataclass
class Outages:
    stack: Stack
    postgres: TcpProxy
    temporal: TcpProxy

    @property
    def probes(self) -> dict[str, str]:
        assert self.stack.health_url is not None
        return {"api": self.stack.base_url, "worker": self.stack.health_url}


@pytest_asyncio.fixture
async def outages(temporal_env: WorkflowEnvironment, pg_url: str, task_queue: str) -> AsyncIterator[Outages]:
    pg = make_url(pg_url)
    temporal_port = int(temporal_env.client.service_client.config.target_host.rsplit(":", 1)[1])
    async with TcpProxy(pg.port or 5432) as postgres, TcpProxy(temporal_port) as temporal:
        client = await Client.connect(temporal.address, data_converter=pydantic_data_converter)
        async with running_stack(
            client,
            task_queue=task_queue,
            db_url=pg.set(port=postgres.port).render_as_string(hide_password=False),
            config_overrides={"worker": {"health_bind": "127.0.0.1:0"}},
        ) as stack:
            yield Outages(stack, postgres, temporal)


async def readiness(http: httpx.AsyncClient, base_url: str) -> tuple[int, dict[str, str]]:
    response = await http.get(f"{base_url}/readyz")
    return response.status_code, response.json()["checks"]


async def wait_until(
    http: httpx.AsyncClient, base_url: str, status: int, within_s: float
) -> tuple[float, dict[str, str]]:
    """Poll /readyz until it answers `status`; the seconds that took, and the checks answered."""
    started = time.monotonic()
    while True:
        answered, checks = await readiness(http, base_url)
        elapsed = time.monotonic() - started
        if answered == status:
            return elapsed, checks
        assert elapsed < within_s, f"{base_url}/readyz still {answered} after {elapsed:.1f} s: {checks}"
        await asyncio.sleep(0.2)


async def test_ready_when_everything_answers(outages: Outages) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        api, worker = outages.probes["api"], outages.probes["worker"]
        assert await readiness(http, api) == (200, {"database": "ok", "temporal": "ok"})
        assert await readiness(http, worker) == (200, {"database": "ok", "temporal": "ok", "worker": "ok"})
        for base_url in (api, worker):
            for path in ("/livez", "/healthz"):
                response = await http.get(f"{base_url}{path}")
                assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_unready_while_postgres_is_down_and_ready_after(outages: Outages) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        await outages.postgres.stop()
        for base_url in outages.probes.values():
            took, checks = await wait_until(http, base_url, 503, NOTICE_WITHIN_S)
            assert checks["database"] != "ok" and checks["temporal"] == "ok", checks
            print(f"{base_url}: unready {took:.2f} s after PostgreSQL went away: {checks['database']}")
            assert (await http.get(f"{base_url}/livez")).status_code == 200  # alive all the same

        await outages.postgres.start()
        for base_url in outages.probes.values():
            took, _ = await wait_until(http, base_url, 200, NOTICE_WITHIN_S)
            print(f"{base_url}: ready {took:.2f} s after PostgreSQL came back")


async def test_unready_while_temporal_is_down_and_ready_after(outages: Outages) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        await outages.temporal.stop()
        for base_url in outages.probes.values():
            took, checks = await wait_until(http, base_url, 503, NOTICE_WITHIN_S)
            assert checks["temporal"] != "ok" and checks["database"] == "ok", checks
            print(f"{base_url}: unready {took:.2f} s after Temporal went away: {checks['temporal']}")

        await outages.temporal.start()
        for base_url in outages.probes.values():
            # The client reconnects with backoff: allow it more than one probe.
            took, _ = await wait_until(http, base_url, 200, NOTICE_WITHIN_S + 10)
            print(f"{base_url}: ready {took:.2f} s after Temporal came back")


async def test_a_probe_that_hangs_is_unready_after_its_timeout() -> None:
    """A black-holed address refuses nothing: the probe's own timeout is what answers."""

    async def hangs() -> None:
        await asyncio.Event().wait()

    async def fails() -> None:
        raise OSError("postgresql://user:hunter2@db/x refused")  # a driver quoting its DSN

    async def ok() -> None:
        return None

    started = time.monotonic()
    checks = await Readiness({"slow": hangs, "broken": fails, "fine": ok}, timeout_s=0.2)()
    assert time.monotonic() - started < 1
    assert checks == {"slow": "timed out after 0.2 s", "broken": "OSError", "fine": "ok"}
