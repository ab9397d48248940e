"""The durapay scenarios: the real API and worker (`stack_host`, its own process) driven over HTTP
from here, as a merchant and a provider would, on the mock gateway with no added latency.

- `durapay`: `POST /v1/payments`, card success with automatic capture, fraud check and order
  confirmation on; the answer comes once the payment is decided.
- `webhooks`: signed mock-gateway webhooks through the receiver into signals, against raw client
  signals of the same event to as many payments waiting for 3-D Secure.
- `scale`: N payments waiting for 3-D Secure at once, then all completed by the customer's return.

Each scenario's stack gets its own PostgreSQL database (the production store), created on the
local server for the run and dropped afterwards; DURAPAY_BENCH_STORE=sqlite runs it on SQLite.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg import AsyncConnection
from psycopg.conninfo import conninfo_to_dict
from pydantic import SecretStr
from sqlalchemy import make_url
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from activities.gateways.mock.adapter import MockGateway, MockWebhook
from activities.gateways.mock.settings import MockSettings
from workers.bench import history, load, procstats
from workers.bench.server import Server, child_env, stop_process
from workers.bench.settings import BenchSettings
from workers.bench.stack_host import API_KEY_ID, StackSpec, spec_line
from workflows.client import PaymentWorkflows, workflow_id
from workflows.domain import PaymentStatus
from workflows.event_proof import EventKeys
from workflows.gateway_io import GatewayEvent, GatewayEventKind
from workflows.messages import ActionCompleted
from workflows.money import Amount

SUCCESS_TOKEN = "tok_visa"
THREE_DS_TOKEN = "tok_threeDSecure2Required"
CURRENCY = "USD"
AMOUNT = "49.99"
_READY_TIMEOUT_S = 120.0
_PAID_POLL_S = 0.5

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
        self._admin = psycopg.connect(**_postgres_admin(), autocommit=True)
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
    pid: int
    task_queue: str  # unique per run and scenario; order ids start with it too
    client: Client
    http: httpx.AsyncClient
    signer: MockGateway  # signs webhooks the way the provider does, with the receiver's secret
    event_keys: EventKeys  # proves direct signals the way the receiver does
    server_pid: int | None
    store_cpu: _StoreCpu | None  # None on SQLite: the store then runs inside the app process
    payments: list[dict[str, Any]] = field(default_factory=list)
    store_cpu_at_start: float = 0.0

    def __post_init__(self) -> None:
        self.store_cpu_at_start = self.store_cpu() if self.store_cpu else 0.0

    @property
    def workflows(self) -> PaymentWorkflows:
        return PaymentWorkflows(self.client)

    def cpu(self) -> dict[str, float]:
        cpu = {"app": procstats.cpu_seconds(self.pid)}
        if self.store_cpu is not None:
            cpu["store"] = self.store_cpu()
        if self.server_pid is not None:
            cpu["server"] = procstats.cpu_seconds(self.server_pid)
        return cpu

    def store_cpu_used(self) -> float:
        """The database server's CPU seconds for this stack so far: the bench's, not a neighbour's."""
        return round(self.store_cpu() - self.store_cpu_at_start, 3) if self.store_cpu else 0.0

    async def create(self, index: int, token: str, expected: PaymentStatus) -> float:
        """POST one payment; its latency in seconds. Anything but `expected` is an error."""
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
        return elapsed

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


def _postgres_admin() -> dict[str, Any]:
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
    admin = _postgres_admin()
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


@contextlib.asynccontextmanager
async def running_stack(
    server: Server, settings: BenchSettings, run_id: str, name: str, log_dir: Path
) -> AsyncIterator[Stack]:
    """Start `stack_host` on a fresh database (see `bench_database`) and task queue; stop it on exit."""
    tag = f"bench-{run_id}-{server.variant}-{name}"
    async with bench_database(settings, tag, f"{server.variant}-{name}") as database_url:
        url = make_url(database_url)
        store_cpu = _StoreCpu(url.database or "") if url.get_backend_name() == POSTGRES else None
        try:
            log_path = log_dir / f"{server.variant}-{name}.log"
            async with _stack_process(server, settings, tag, database_url, log_path, store_cpu) as stack:
                yield stack
        finally:
            if store_cpu is not None:
                store_cpu.close()


@contextlib.asynccontextmanager
async def _stack_process(
    server: Server,
    settings: BenchSettings,
    tag: str,
    database_url: str,
    log_path: Path,
    store_cpu: _StoreCpu | None,
) -> AsyncIterator[Stack]:
    api_key, webhook_secret = secrets.token_urlsafe(24), secrets.token_hex(16)
    event_proof_key = secrets.token_urlsafe(32)
    spec = StackSpec(
        address=server.address,
        namespace=server.namespace,
        task_queue=tag,
        database_url=SecretStr(database_url),
        api_key=SecretStr(api_key),
        webhook_secret=SecretStr(webhook_secret),
        event_proof_key=SecretStr(event_proof_key),
        decide_timeout_s=settings.op_timeout_s,
    )
    log_path.parent.mkdir(parents=True, exist_ok=True)
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
                raise RuntimeError(
                    f"durapay stack exited with {await process.wait()} while starting; see {log_path}"
                )
            base_url = json.loads(line)["base_url"]
            connections = max(max(settings.levels), settings.batch_concurrency) + 8
            async with httpx.AsyncClient(
                base_url=base_url,
                headers={"Authorization": f"Bearer {api_key}"},
                timeout=settings.op_timeout_s,
                limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
            ) as http:
                yield Stack(
                    pid=process.pid,
                    task_queue=tag,
                    client=await Client.connect(
                        server.address, namespace=server.namespace, data_converter=pydantic_data_converter
                    ),
                    http=http,
                    signer=MockGateway(MockSettings(enabled=True, webhook_secret=SecretStr(webhook_secret))),
                    event_keys=EventKeys({API_KEY_ID: event_proof_key.encode()}, API_KEY_ID),
                    server_pid=server.pid,
                    store_cpu=store_cpu,
                )
        finally:
            await stop_process(process)


# --------------------------------------------------------------------------------- scenarios


async def payments(server: Server, settings: BenchSettings, run_id: str, log_dir: Path) -> dict[str, Any]:
    """`POST /v1/payments` in a closed loop at each concurrency: card success, auto-capture."""
    async with running_stack(server, settings, run_id, "durapay", log_dir) as stack:

        async def create(index: int) -> load.OpTiming:
            # The workflow stays open for its settlement window: the answer is the measurement.
            return load.OpTiming(answer_s=await stack.create(index, SUCCESS_TOKEN, PaymentStatus.PAID))

        levels = await load.sweep(
            create,
            levels=settings.levels,
            warmup_s=settings.warmup_s,
            duration_s=settings.duration_s,
            op_timeout_s=settings.op_timeout_s,
            cpu_probe=stack.cpu,
        )
        await history.probe(create)
        probed = [p["id"] for p in stack.payments[-history.SAMPLES :]]
        return {
            "store": store_choice(),
            "store_cpu_s": stack.store_cpu_used(),
            "levels": levels,
            "history_events_per_payment": await stack.histories(probed),
        }


def _batch_options(stack: Stack, settings: BenchSettings) -> dict[str, Any]:
    return {
        "concurrency": settings.batch_concurrency,
        "timeout_s": settings.batch_timeout_s,
        "cpu_probe": stack.cpu,
    }


async def _start_waiting(stack: Stack, settings: BenchSettings, count: int) -> dict[str, Any]:
    """Create `count` payments that end up waiting for 3-D Secure (202, authorizing)."""

    async def create(index: int) -> float:
        return await stack.create(index, THREE_DS_TOKEN, PaymentStatus.AUTHORIZING)

    return await load.measured_batch(create, count=count, **_batch_options(stack, settings))


async def _signal_phase(
    stack: Stack, settings: BenchSettings, count: int, op: Callable[[int], Awaitable[float]], paid_before: int
) -> dict[str, Any]:
    """`count` signals (or webhooks), each timed to its acceptance, then wait until they have made
    their payments paid, so that the CPU per payment covers the work the signals caused too."""

    async def paid(signalled: int) -> int:
        reached = await stack.wait_for(PaymentStatus.PAID, paid_before + signalled, settings.batch_timeout_s)
        return reached - paid_before

    return await load.measured_batch(op, count=count, settle=paid, **_batch_options(stack, settings))


def _succeeded(payment: dict[str, Any]) -> MockWebhook:
    amount = Amount.of(payment["amount"], payment["currency"])
    return MockWebhook(
        type=GatewayEventKind.PAYMENT_SUCCEEDED.value,
        payment_id=payment["id"],
        provider_payment_id=payment["provider_payment_id"],
        amount_minor=amount.minor,
        currency=amount.currency,
    )


async def webhooks(server: Server, settings: BenchSettings, run_id: str, log_dir: Path) -> dict[str, Any]:
    """`signal_n` payments get a signed `payment.succeeded` through the receiver, `signal_n` others
    the same event as a raw client signal; each phase drains before the next starts."""
    n = settings.signal_n
    async with running_stack(server, settings, run_id, "webhooks", log_dir) as stack:
        started = await _start_waiting(stack, settings, 2 * n)
        by_webhook, by_signal = stack.payments[:n], stack.payments[n : 2 * n]

        async def deliver(index: int) -> float:
            headers, body = stack.signer.build_webhook(_succeeded(by_webhook[index]))
            begun = time.monotonic()
            response = await stack.http.post("/webhooks/mock", content=body, headers=headers)
            elapsed = time.monotonic() - begun
            if response.status_code != 200:
                raise UnexpectedAnswer(f"receiver answered {response.status_code}: {response.text[:200]}")
            return elapsed

        async def signal(index: int) -> float:
            payment = by_signal[index]
            webhook = _succeeded(payment)
            event = GatewayEvent(
                gateway="mock",
                event_id=webhook.event_id(),
                kind=GatewayEventKind.PAYMENT_SUCCEEDED,
                provider_type=webhook.type,
                payment_id=payment["id"],
                provider_payment_id=payment["provider_payment_id"],
                amount=Amount.of(payment["amount"], payment["currency"]),
            )
            begun = time.monotonic()
            await stack.workflows.gateway_event(payment["id"], stack.event_keys.prove(event, payment["id"]))
            return time.monotonic() - begun

        webhook_stats = await _signal_phase(stack, settings, len(by_webhook), deliver, paid_before=0)
        signal_stats = await _signal_phase(
            stack, settings, len(by_signal), signal, paid_before=webhook_stats["completed"]
        )
        return {
            "store": store_choice(),
            "store_cpu_s": stack.store_cpu_used(),
            "count": n,
            "concurrency": settings.batch_concurrency,
            "start": started,
            "webhooks": webhook_stats,
            "raw_signals": signal_stats,
        }


async def scale(server: Server, settings: BenchSettings, run_id: str, log_dir: Path) -> dict[str, Any]:
    """`scale_n` payments waiting for 3-D Secure at once, then every customer returns."""
    n = settings.scale_n
    async with running_stack(server, settings, run_id, "scale", log_dir) as stack:
        rss_idle = procstats.rss_bytes(stack.pid)
        started = await _start_waiting(stack, settings, n)
        rss_waiting = procstats.rss_bytes(stack.pid)

        async def customer_returns(index: int) -> float:
            # The signal the API's /actions/complete sends; here straight from a client so that
            # the measured time is the workflows', not the endpoint's polling for the outcome.
            begun = time.monotonic()
            await stack.workflows.action_completed(
                stack.payments[index]["id"], ActionCompleted(data={"three_ds_result": "authenticated"})
            )
            return time.monotonic() - begun

        completed = await _signal_phase(stack, settings, len(stack.payments), customer_returns, paid_before=0)
        result: dict[str, Any] = {
            "store": store_choice(),
            "store_cpu_s": stack.store_cpu_used(),
            "count": n,
            "concurrency": settings.batch_concurrency,
            "start": started,
            "complete_by_signal": completed,
            "worker_memory": procstats.memory_while_waiting(
                stack.pid, rss_idle, rss_waiting, started["done"]
            ),
            "history_events_per_payment": await stack.histories(
                [p["id"] for p in stack.payments[: history.SAMPLES]]
            ),
        }
        if server.pid is not None:
            result["server_rss_mb"] = round(procstats.rss_bytes(server.pid) / 2**20, 1)
        return result
