"""A durapay stack for one scenario: its own PostgreSQL database and task queue, and the real API
and worker in the processes of a layout (see `stack_host`), driven over HTTP from here as a
merchant and a provider would.

Layouts:
- `one`: API and worker in one process (`durapay dev`'s shape);
- `split`: `durapay api` and `durapay worker` as two processes (the production shape);
- `split2`: one API process and two worker processes on the same task queue (scale-out).

CPU is read per process and summed as `app`; RSS of the processes that run workflows is what a
waiting payment costs. DURAPAY_BENCH_STORE=sqlite runs a stack on SQLite instead of PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import psycopg
from psycopg import AsyncConnection
from psycopg.conninfo import conninfo_to_dict
from pydantic import SecretStr
from sqlalchemy import make_url
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from activities.gateways.mock.adapter import MockGateway
from activities.gateways.mock.settings import MockSettings
from workers.bench import capacity, history, procstats
from workers.bench.server import Server, child_env, stop_process
from workers.bench.settings import BenchSettings
from workers.bench.stack_host import API_KEY_ID, Role, StackSpec, spec_line
from workflows.client import PaymentWorkflows, workflow_id
from workflows.domain import PaymentStatus
from workflows.event_proof import EventKeys

CURRENCY = "USD"
AMOUNT = "49.99"
_READY_TIMEOUT_S = 120.0
_PAID_POLL_S = 0.5

ONE, SPLIT, SPLIT2 = "one", "split", "split2"
# Each layout's processes, by the label their CPU is reported under, in start order (the API
# process migrates the database, so it comes first).
LAYOUTS: dict[str, tuple[tuple[str, Role], ...]] = {
    ONE: (("app", "one"),),
    SPLIT: (("api", "api"), ("worker", "worker")),
    SPLIT2: (("api", "api"), ("worker1", "worker"), ("worker2", "worker")),
}


def scenario_name(base: str, layout: str) -> str:
    """A durapay scenario's name in a layout: `base` in one process, `base_<layout>` otherwise."""
    return base if layout == ONE else f"{base}_{layout}"


# The store the stack runs on: PostgreSQL, as in production, unless DURAPAY_BENCH_STORE=sqlite
# (the embedded default of `durapay dev`, whose single writer is a different bottleneck).
STORE_ENV = "DURAPAY_BENCH_STORE"
POSTGRES, SQLITE = "postgresql", "sqlite"
# Where a run creates (and afterwards drops) its own databases: the admin database of a local server.
POSTGRES_ADMIN_ENV = "DURAPAY_BENCH_POSTGRES"
POSTGRES_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"


class UnexpectedAnswer(Exception):
    """The API answered, but not what the scenario's payment should get."""


class _StoreCpu:
    """CPU seconds of the PostgreSQL backends serving one database, so far: the store's share of a
    payment. A backend that closes keeps the last value read from it (what it used after that read
    is missed: pooled connections rarely close). Needs the server on this machine, like the rest."""

    def __init__(self, database: str) -> None:
        self._database = database
        self._admin = psycopg.connect(**postgres_admin(), autocommit=True)
        self._seen: dict[int, float] = {}

    def __call__(self) -> float:
        rows = self._admin.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (self._database,))
        for (pid,) in rows.fetchall():
            with contextlib.suppress(FileNotFoundError):  # it closed between the query and the read
                self._seen[pid] = procstats.cpu_seconds(pid)
        return sum(self._seen.values())

    def close(self) -> None:
        self._admin.close()


@dataclass
class Stack:
    pids: dict[str, int]  # process label (see LAYOUTS) -> pid
    worker_pids: list[int]  # the processes that run workflows: their RSS is the waiting cost
    task_queue: str  # unique per run and scenario; order ids start with it too
    client: Client
    http: httpx.AsyncClient
    # The webhook phases' client: aiohttp's, 0.19 ms CPU per POST at 32 in flight against httpx's
    # 4.0 ms (measured on this 2-core machine against a trivial server). The load generator shares
    # the cores with what it measures, as the raw signals' Temporal (Rust) client does.
    hooks: aiohttp.ClientSession
    signer: MockGateway  # signs webhooks the way the provider does, with the receiver's secret
    event_keys: EventKeys  # proves direct signals the way the receiver does
    server_pid: int | None
    store_cpu: _StoreCpu | None  # None on SQLite: the store then runs inside the app process
    payments: list[dict[str, Any]] = field(default_factory=list)
    store_cpu_at_start: float = 0.0
    # Rows and bytes the scenario wrote to its database, set once the stack has stopped.
    store_writes: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.store_cpu_at_start = self.store_cpu() if self.store_cpu else 0.0

    @property
    def workflows(self) -> PaymentWorkflows:
        return PaymentWorkflows(self.client)

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far: `app` = all the stack's processes; each one by label when several."""
        per_process = {label: procstats.cpu_seconds(pid) for label, pid in self.pids.items()}
        cpu = {"app": sum(per_process.values())}
        if len(per_process) > 1:
            cpu.update(per_process)
        if self.store_cpu is not None:
            cpu["store"] = self.store_cpu()
        if self.server_pid is not None:
            cpu["server"] = procstats.cpu_seconds(self.server_pid)
        return cpu

    def worker_rss_bytes(self) -> int:
        return sum(procstats.rss_bytes(pid) for pid in self.worker_pids)

    def store_cpu_used(self) -> float:
        """The database server's CPU seconds for this stack so far: the bench's, not a neighbour's."""
        return round(self.store_cpu() - self.store_cpu_at_start, 3) if self.store_cpu else 0.0

    async def create(self, index: int, token: str, expected: PaymentStatus) -> float:
        """POST one payment; its latency in seconds. Anything but `expected` is an error."""
        return (await self.create_payment(index, token, expected))[0]

    async def create_payment(
        self, index: int, token: str, expected: PaymentStatus
    ) -> tuple[float, dict[str, Any]]:
        """POST one payment; its latency in seconds and the payment as answered."""
        order_id = f"{self.task_queue}-{index}"
        body = {
            "order_id": order_id,
            "currency": CURRENCY,
            "amount": AMOUNT,
            "payment_method": {"type": "card", "token": token},
        }
        started = time.monotonic()
        response = await self.http.post("/v1/payments", json=body, headers={"Idempotency-Key": order_id})
        elapsed = time.monotonic() - started
        payment = (
            response.json() if response.headers.get("content-type", "").startswith("application/") else {}
        )
        if payment.get("status") != expected.value:
            raise UnexpectedAnswer(f"{response.status_code} {payment.get('status') or response.text[:200]}")
        self.payments.append(payment)
        return elapsed, payment

    async def count(self, status: PaymentStatus) -> int:
        """Payments of this stack in `status`, from the search attribute the workflow keeps."""
        query = f"TaskQueue = '{self.task_queue}' AND PaymentStatus = '{status.value}'"
        return (await self.client.count_workflows(query)).count

    async def wait_for(self, status: PaymentStatus, count: int, timeout_s: float) -> int:
        """Until `count` payments are in `status` or the time is up; how many are."""
        deadline = time.monotonic() + timeout_s
        reached = await self.count(status)
        while reached < count and time.monotonic() < deadline:
            await asyncio.sleep(_PAID_POLL_S)
            reached = await self.count(status)
        return reached

    async def histories(self, payment_ids: list[str]) -> dict[str, Any] | None:
        return await history.sample(self.client, [workflow_id(pid) for pid in payment_ids])


def postgres_admin() -> dict[str, Any]:
    return conninfo_to_dict(os.environ.get(POSTGRES_ADMIN_ENV, POSTGRES_ADMIN_DSN))


def store_choice() -> str:
    store = os.environ.get(STORE_ENV, POSTGRES).strip().lower() or POSTGRES
    if store not in (POSTGRES, SQLITE):
        raise ValueError(f"{STORE_ENV} must be {POSTGRES} or {SQLITE}, got {store!r}")
    return store


@contextlib.asynccontextmanager
async def bench_database(settings: BenchSettings, tag: str, name: str) -> AsyncIterator[str]:
    """A fresh database for one scenario, as an SQLAlchemy URL: a PostgreSQL database created for
    the run and dropped afterwards, or (DURAPAY_BENCH_STORE=sqlite) a file under the output dir."""
    if store_choice() == SQLITE:
        path = (settings.out_dir / "db" / f"{name}.sqlite").resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        yield f"sqlite+aiosqlite:///{path}"
        return
    admin = postgres_admin()
    database = tag.replace("-", "_").lower()  # the tag is [a-z0-9-]: no quoting surprises
    async with await AsyncConnection.connect(**admin, autocommit=True) as conn:
        await conn.execute(f'CREATE DATABASE "{database}"')
    try:
        user = admin.get("user", "postgres")
        password = f":{admin['password']}" if admin.get("password") else ""
        host, port = admin.get("host", "127.0.0.1"), admin.get("port", 5432)
        yield f"postgresql+psycopg://{user}{password}@{host}:{port}/{database}"
    finally:
        # FORCE: a stack that died without closing its pool must not leave the database behind.
        async with await AsyncConnection.connect(**admin, autocommit=True) as conn:
            await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


@dataclass(frozen=True)
class StackOptions:
    """What a scenario asks of its stack beyond the defaults (mock gateway, one process)."""

    layout: str = ONE
    gateways: dict[str, dict[str, Any]] = field(default_factory=dict)  # extra [payment.<id>] sections
    default_gateway: str = "mock"
    # How long a payment may wait for its customer (`payment.action_timeout_seconds`); None: the default.
    action_timeout_s: int | None = None


@contextlib.asynccontextmanager
async def running_stack(
    server: Server,
    settings: BenchSettings,
    run_id: str,
    name: str,
    log_dir: Path,
    options: StackOptions | None = None,
) -> AsyncIterator[Stack]:
    """Start the layout's processes on a fresh database (see `bench_database`) and task queue;
    stop them on exit, then read what the scenario wrote to its database (`Stack.store_writes`)."""
    options = options or StackOptions()
    tag = f"bench-{run_id}-{server.variant}-{name}".replace("_", "-")
    async with bench_database(settings, tag, f"{server.variant}-{name}") as database_url:
        url = make_url(database_url)
        postgres = url.get_backend_name() == POSTGRES
        store_cpu = _StoreCpu(url.database or "") if postgres else None
        writes = capacity.StoreWrites(postgres_admin(), url.database or "") if postgres else None
        try:
            log_path = log_dir / f"{server.variant}-{name}.log"
            async with _stack_processes(
                server, settings, tag, database_url, log_path, store_cpu, options
            ) as stack:
                if writes is not None:
                    writes.start()  # after the migrations: only what the payments wrote counts
                yield stack
            if writes is not None:
                # Read once the processes are gone: a closed backend has flushed its counters.
                stack.store_writes = writes.used()
        finally:
            if store_cpu is not None:
                store_cpu.close()


async def _start_process(spec: StackSpec, log_path: Path) -> tuple[asyncio.subprocess.Process, str]:
    """One `stack_host` process; returns it and the base URL it announced once ready."""
    with log_path.open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "workers.bench.stack_host",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
            env=child_env(),
        )
    try:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(spec_line(spec))
        await process.stdin.drain()
        process.stdin.close()
        line = await asyncio.wait_for(process.stdout.readline(), _READY_TIMEOUT_S)
        if not line:
            raise RuntimeError(f"durapay {spec.role} exited with {await process.wait()} while starting")
        return process, str(json.loads(line)["base_url"])
    except BaseException:
        await stop_process(process)
        raise


@contextlib.asynccontextmanager
async def _stack_processes(
    server: Server,
    settings: BenchSettings,
    tag: str,
    database_url: str,
    log_path: Path,
    store_cpu: _StoreCpu | None,
    options: StackOptions,
) -> AsyncIterator[Stack]:
    api_key, webhook_secret = secrets.token_urlsafe(24), secrets.token_hex(16)
    event_proof_key = secrets.token_urlsafe(32)
    base = StackSpec(
        address=server.address,
        namespace=server.namespace,
        task_queue=tag,
        database_url=SecretStr(database_url),
        api_key=SecretStr(api_key),
        webhook_secret=SecretStr(webhook_secret),
        event_proof_key=SecretStr(event_proof_key),
        decide_timeout_s=settings.op_timeout_s,
        gateways=options.gateways,
        default_gateway=options.default_gateway,
        action_timeout_s=options.action_timeout_s,
    )
    log_path.parent.mkdir(parents=True, exist_ok=True)
    processes: dict[str, asyncio.subprocess.Process] = {}
    base_url = ""
    try:
        for label, role in LAYOUTS[options.layout]:
            process, url = await _start_process(base.model_copy(update={"role": role}), log_path)
            processes[label] = process
            if role != "worker":
                base_url = url
        connections = max(max(settings.levels), settings.batch_concurrency) + 8
        async with (
            httpx.AsyncClient(
                base_url=base_url,
                headers={"Authorization": f"Bearer {api_key}"},
                timeout=settings.op_timeout_s,
                limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
            ) as http,
            aiohttp.ClientSession(
                base_url=base_url,
                connector=aiohttp.TCPConnector(limit=connections),
                timeout=aiohttp.ClientTimeout(total=settings.op_timeout_s),
            ) as hooks,
        ):
            yield Stack(
                pids={label: process.pid for label, process in processes.items()},
                worker_pids=[
                    processes[label].pid for label, role in LAYOUTS[options.layout] if role != "api"
                ],
                task_queue=tag,
                client=await Client.connect(
                    server.address, namespace=server.namespace, data_converter=pydantic_data_converter
                ),
                http=http,
                hooks=hooks,
                signer=MockGateway(MockSettings(enabled=True, webhook_secret=SecretStr(webhook_secret))),
                event_keys=EventKeys({API_KEY_ID: event_proof_key.encode()}, API_KEY_ID),
                server_pid=server.pid,
                store_cpu=store_cpu,
            )
    finally:
        # The API first (no new payments), then the workers drain.
        for process in processes.values():
            await stop_process(process)
