"""Readiness checks of a durapay process, and the worker process's health listener.

`/livez` answers while the process runs; `/readyz` while the database and Temporal answer within
`PROBE_TIMEOUT_S` (and, in a worker process, while the worker runs). The API serves both itself
(api/app.py); `durapay worker` has no HTTP port of its own, so `[worker] health_bind` gives it one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import timedelta

from aiohttp import web
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.worker import Worker

from api.app import health_routes
from workers.config import parse_bind

PROBE_TIMEOUT_S = 2.0

Probe = Callable[[], Awaitable[None]]


class NotReady(Exception):
    pass


def database_probe(engine: AsyncEngine) -> Probe:
    async def probe() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    return probe


def temporal_probe(client: Client, timeout_s: float = PROBE_TIMEOUT_S) -> Probe:
    async def probe() -> None:
        if not await client.service_client.check_health(timeout=timedelta(seconds=timeout_s)):
            raise NotReady("not serving")

    return probe


def worker_probe(worker: Worker) -> Probe:
    async def probe() -> None:
        if not worker.is_running or worker.is_shutdown:
            raise NotReady("not running")

    return probe


class Readiness:
    """Runs every probe at once, each bounded by `timeout_s`; returns check -> "ok" or the reason."""

    def __init__(self, probes: Mapping[str, Probe], timeout_s: float = PROBE_TIMEOUT_S) -> None:
        self._probes = dict(probes)
        self._timeout_s = timeout_s

    async def __call__(self) -> dict[str, str]:
        results = await asyncio.gather(*(self._run(probe) for probe in self._probes.values()))
        return dict(zip(self._probes, results, strict=True))

    async def _run(self, probe: Probe) -> str:
        try:
            await asyncio.wait_for(probe(), self._timeout_s)
        except TimeoutError:
            return f"timed out after {self._timeout_s:g} s"
        except Exception as exc:
            # The type and the probe's own words only: a driver's message could quote a DSN.
            return f"{type(exc).__name__}: {exc}" if isinstance(exc, NotReady) else type(exc).__name__
        return "ok"


@asynccontextmanager
async def serving_health(bind: str | None, readiness: Readiness) -> AsyncIterator[str | None]:
    """Serve /livez and /readyz on `bind` (port 0: an ephemeral one) while the block runs; yields
    the base URL, or None when `bind` is None."""
    if bind is None:
        yield None
        return
    host, port = parse_bind(bind)
    app = web.Application()
    app.add_routes(health_routes(readiness))
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        await runner.cleanup()
        raise OSError(
            exc.errno, f"cannot serve health on {host}:{port} ({exc.strerror}); set [worker] health_bind"
        ) from None
    try:
        bound_host, bound_port = runner.addresses[0][:2]
        bound_host = f"[{bound_host}]" if ":" in bound_host else bound_host
        yield f"http://{bound_host}:{bound_port}"
    finally:
        await runner.cleanup()
