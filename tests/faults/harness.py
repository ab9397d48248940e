"""One fault run's durapay, deployed as in production but small:

- `durapay worker` as a child process (so that it can be killed -9 and started again), configured
  through `DURAPAY_*` variables;
- the API in this process, with its own `Runtime` over the same database and Temporal server;
- the fake Stripe in this process: the worker's Stripe adapter calls it, and it sends its signed
  webhooks to the API's receiver;
- a merchant that retries like the API documentation asks: the same Idempotency-Key again on a 5xx
  or when no answer came.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
from temporalio.client import Client

from activities.gateways.stripe.fake import FakeStripe
from activities.store.repository import PaymentStore
from api.auth import DEFAULT_MERCHANT
from api.payments import derive_payment_id, derive_refund_id
from tests.faults.processes import WorkerProcess
from tests.faults.report import FIGURES
from workers.api_server import start_api
from workers.config import load_config
from workers.worker import Runtime, connect
from workflows.client import workflow_id
from workflows.domain import PaymentStatus

API_KEY_ID = "faults"
# The merchant's HTTP timeout: a capture or refund waits for its gateway call, which after a worker
# crash is retried only once its start-to-close timeout (30 s) has passed.
HTTP_TIMEOUT_S = 120.0
MERCHANT_RETRY_S = 0.5  # when the answer names no Retry-After
# How long a held gateway call stays at Stripe: longer than the Stripe client timeout configured
# below (2 s), so the adapter gives up on it unless the worker dies first.
HOLD_S = 3.5

T = TypeVar("T")


async def wait_until(check: Callable[[], Awaitable[T | None]], *, timeout: float, what: str) -> T:
    """Poll `check` until it returns something other than None/False; fail naming `what`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await check()
        if value is not None and value is not False:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.05)


def stack_env(
    *, temporal_address: str, task_queue: str, db_url: str, fake: FakeStripe, api_key: str
) -> dict[str, str]:
    return {
        **service_env(
            temporal_address=temporal_address, task_queue=task_queue, db_url=db_url, api_key=api_key
        ),
        "DURAPAY_PAYMENT__DEFAULT_GATEWAY": "stripe",
        "DURAPAY_PAYMENT__STRIPE__ENABLED": "true",
        "DURAPAY_PAYMENT__STRIPE__SECRET_KEY": fake.secret_key,
        "DURAPAY_PAYMENT__STRIPE__PUBLISHABLE_KEY": "pk_test_durapay_fake",
        "DURAPAY_PAYMENT__STRIPE__WEBHOOK_SECRET": fake.webhook_secrets[0],
        "DURAPAY_PAYMENT__STRIPE__API_BASE": fake.url,
        # Short, so that a provider that hangs is a timeout within the run, not after it.
        "DURAPAY_PAYMENT__STRIPE__TIMEOUT_SECONDS": "2",
    }


def service_env(*, temporal_address: str, task_queue: str, db_url: str, api_key: str) -> dict[str, str]:
    """The environment of the stack itself, whichever gateway it talks to."""
    return {
        "DURAPAY_TEMPORAL__ADDRESS": temporal_address,
        "DURAPAY_TEMPORAL__TASK_QUEUE": task_queue,
        "DURAPAY_DATABASE__URL": db_url,
        "DURAPAY_API_KEYS": f"{API_KEY_ID}:{api_key}",
        "DURAPAY_API__PORT": "0",
        # The limiter counts in the database: with it on, a database outage would refuse every
        # request before it reached the payment engine, and hide what the suite is looking for.
        "DURAPAY_API__RATE_LIMITING": "false",
        "DURAPAY_API__DECIDE_TIMEOUT_SECONDS": "5",
        "DURAPAY_WORKER__GRACEFUL_SHUTDOWN_SECONDS": "2",
    }


AMOUNT, AMOUNT_MINOR = "49.99", 4999  # USD: the same number at Stripe


def payment_body(
    order_id: str, *, token: str = "pm_card_visa", capture_method: str = "automatic", gateway: str = "stripe"
) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "amount": AMOUNT,
        "currency": "USD",
        "gateway": gateway,
        "payment_method": {"type": "card", "token": token},
        "capture_method": capture_method,
    }


class Merchant:
    """The merchant's side of the HTTP API."""

    def __init__(self, base_url: str, api_key: str) -> None:
        self.api_key = api_key
        self.http = httpx.AsyncClient(base_url=base_url, timeout=HTTP_TIMEOUT_S)
        self.server_errors: list[str] = []  # "<status> <code> Retry-After: <value>" per 5xx answer

    def headers(self, key: str | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.api_key}"}
        if key is not None:
            headers["Idempotency-Key"] = key
        return headers

    async def post(
        self, path: str, body: Mapping[str, Any] | None, key: str, *, patience: float = 150.0
    ) -> httpx.Response:
        """POST until an answer that is not a server error, always with the same Idempotency-Key,
        waiting as long as the API's Retry-After asks."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + patience
        while True:
            delay = MERCHANT_RETRY_S
            try:
                response = await self.http.post(path, json=body, headers=self.headers(key))
                if response.status_code < 500:
                    return response
                answer, failure = str(response.status_code), f"{response.status_code} {response.text[:200]}"
                code = (
                    response.json().get("code")
                    if response.headers.get("content-type", "").endswith("json")
                    else None
                )
                retry_after = response.headers.get("Retry-After")
                self.server_errors.append(f"{response.status_code} {code} Retry-After: {retry_after}")
                if retry_after and retry_after.isdigit():
                    delay = float(retry_after)
            except httpx.TransportError as exc:
                answer, failure = "no answer", repr(exc)
            if loop.time() > deadline:
                raise AssertionError(
                    f"POST {path} (key {key}) still failing after {patience:.0f}s: {failure}"
                )
            FIGURES.merchant_retries[answer] += 1
            await asyncio.sleep(delay)

    async def pay(self, key: str, **body: Any) -> dict[str, Any]:
        response = await self.post("/v1/payments", payment_body(f"order-{key}", **body), key)
        assert response.status_code in (200, 201, 202, 402), response.text
        return response.json()

    async def capture(self, payment_id: str, key: str) -> dict[str, Any]:
        response = await self.post(f"/v1/payments/{payment_id}/capture", None, key)
        assert response.status_code == 200, response.text
        return response.json()

    async def refund(self, payment_id: str, key: str) -> dict[str, Any]:
        response = await self.post(f"/v1/payments/{payment_id}/refunds", None, key)
        assert response.status_code in (201, 202), response.text
        return response.json()

    async def aclose(self) -> None:
        await self.http.aclose()


@dataclass
class FaultStack:
    fake: FakeStripe
    worker: WorkerProcess
    client: Client
    store: PaymentStore
    merchant: Merchant
    fault_ended_at: float = 0.0  # event loop time; how long recovery takes is measured from it

    def fault(self, kind: str) -> None:
        """Count an injected fault. It ends now unless `fault_over()` is called later."""
        FIGURES.faults[kind] += 1
        self.fault_over()

    def fault_over(self) -> None:
        self.fault_ended_at = asyncio.get_running_loop().time()

    @staticmethod
    def payment_id(key: str) -> str:
        """The id the API derives from the merchant's Idempotency-Key, known before it answers."""
        return derive_payment_id(DEFAULT_MERCHANT, key)

    @staticmethod
    def refund_id(payment_id: str, key: str) -> str:
        return derive_refund_id(payment_id, key)

    async def kill_worker(self, when: str) -> None:
        await self.worker.kill()
        self.fault(f"worker killed -9 {when}")

    async def start_worker(self) -> None:
        await self.worker.start()
        self.fault_over()

    async def restart_worker(self, when: str) -> None:
        await self.kill_worker(when)
        await self.start_worker()

    async def gateway_call_arrived(self, path: str, idempotency_key: str, *, timeout: float = 30.0) -> None:
        """Wait until the fake Stripe has received this call (it may still be working on it)."""

        async def arrived() -> bool:
            return any(
                r.method == "POST" and r.path == path and r.idempotency_key == idempotency_key
                for r in self.fake.requests
            )

        await wait_until(arrived, timeout=timeout, what=f"POST {path} with key {idempotency_key}")

    async def held_call(
        self, path: str, idempotency_key: str, request: Coroutine[Any, Any, T], *, hold_s: float = HOLD_S
    ) -> asyncio.Task[T]:
        """Start `request` (a merchant call) and return once the gateway call it leads to is at
        Stripe, which holds it for `hold_s` before doing the work and answering. The fake reads
        its latency once per request, so calls that arrive after this one are not slowed."""
        self.fake.latency = hold_s
        task = asyncio.create_task(request)
        try:
            await self.gateway_call_arrived(path, idempotency_key)
        except BaseException:
            task.cancel()
            raise
        finally:
            self.fake.latency = 0
        return task


@dataclass(frozen=True)
class Expect:
    """How a payment must end once the fault is over (see tests.faults.invariants)."""

    payment_id: str
    status: PaymentStatus
    captured_minor: int = 0
    refunded_minor: int = 0


@dataclass
class InFlight:
    """Payments caught by a fault in every phase: new ones whose authorization Stripe is working
    on (one of them declined), a capture and a refund (also at Stripe), the merchant requests
    waiting for them, and payments legitimately waiting meanwhile (for 3-D Secure, for a capture)."""

    requests: list[asyncio.Task[dict[str, Any]]]
    held: list[tuple[str, str]]  # (path, idempotency key) of the gateway calls Stripe holds
    expected: list[Expect]

    # Payments started while Stripe holds the calls: (card, how each must end).
    NEW = (
        ("pm_card_visa", PaymentStatus.PAID),
        ("pm_card_visa", PaymentStatus.PAID),
        ("pm_card_chargeDeclined", PaymentStatus.FAILED),
    )

    @classmethod
    async def start(cls, stack: FaultStack, unique: str) -> InFlight:
        merchant = stack.merchant
        to_capture = await merchant.pay(f"{unique}-authorized", capture_method="manual")
        assert to_capture["status"] == "authorized", to_capture
        never_captured = await merchant.pay(f"{unique}-held", capture_method="manual")
        assert never_captured["status"] == "authorized", never_captured
        three_ds = await merchant.pay(f"{unique}-3ds", token="pm_card_threeDSecure2Required")
        assert three_ds["status"] == "authorizing", three_ds
        paid = await merchant.pay(f"{unique}-paid")
        assert paid["status"] == "paid", paid

        keys = [f"{unique}-new-{n}" for n in range(len(cls.NEW))]
        refund_key = f"{unique}-refund"
        refund_id = stack.refund_id(paid["id"], refund_key)
        held = [("/v1/payment_intents", f"{workflow_id(stack.payment_id(key))}:authorize") for key in keys]
        held += [
            (
                f"/v1/payment_intents/{to_capture['provider_payment_id']}/capture",
                f"{workflow_id(to_capture['id'])}:capture",
            ),
            ("/v1/refunds", f"{workflow_id(paid['id'])}:refund:{refund_id}"),
        ]
        stack.fake.latency = HOLD_S
        requests = [
            asyncio.create_task(merchant.pay(key, token=card))
            for key, (card, _) in zip(keys, cls.NEW, strict=False)
        ]
        requests.append(asyncio.create_task(merchant.capture(to_capture["id"], f"{unique}-capture")))
        requests.append(asyncio.create_task(merchant.refund(paid["id"], refund_key)))
        try:
            for path, key in held:
                await stack.gateway_call_arrived(path, key)
        except BaseException:
            for task in requests:
                task.cancel()
            raise
        finally:
            stack.fake.latency = 0
        expected = [
            Expect(stack.payment_id(key), status, AMOUNT_MINOR if status is PaymentStatus.PAID else 0)
            for key, (_, status) in zip(keys, cls.NEW, strict=False)
        ]
        expected += [
            Expect(to_capture["id"], PaymentStatus.PAID, AMOUNT_MINOR),
            Expect(paid["id"], PaymentStatus.REFUNDED, AMOUNT_MINOR, AMOUNT_MINOR),
            Expect(never_captured["id"], PaymentStatus.AUTHORIZED),
            Expect(three_ds["id"], PaymentStatus.AUTHORIZING),
        ]
        return cls(requests, held, expected)

    async def stripe_answered(self, stack: FaultStack) -> None:
        """Wait until Stripe has done the work of every held call (and answered, or tried to)."""

        async def answered() -> bool:
            # 0: still running; 409: a retry turned away while the held call ran.
            done = {(r.path, r.idempotency_key) for r in stack.fake.requests if r.status not in (0, 409)}
            return all(call in done for call in self.held)

        await wait_until(answered, timeout=30, what="Stripe to finish the held calls")

    async def answers(self) -> list[dict[str, Any]]:
        answers = await gather_all(*self.requests)
        # Captures and refunds answer once their gateway call is through.
        assert [a["status"] for a in answers[-2:]] == ["paid", "succeeded"], answers
        return answers


@asynccontextmanager
async def fault_stack(
    *, temporal_address: str, db_url: str, workdir: Path, task_queue: str
) -> AsyncIterator[FaultStack]:
    api_key = secrets.token_urlsafe(24)
    async with FakeStripe() as fake:
        env = stack_env(
            temporal_address=temporal_address,
            task_queue=task_queue,
            db_url=db_url,
            fake=fake,
            api_key=api_key,
        )
        config = load_config(environ=env, use_default_file=False)
        # The migration runs here, once, before the worker starts: as a deployment does it.
        async with await Runtime.open(config, migrate_database=True) as runtime:
            client = await connect(config)
            api = await start_api(client, config, runtime)
            merchant = Merchant(api.base_url, api_key)
            worker = WorkerProcess(env, workdir)
            try:
                fake.webhook_url = f"{api.base_url}/webhooks/stripe"
                await worker.start()
                yield FaultStack(
                    fake=fake, worker=worker, client=client, store=runtime.store, merchant=merchant
                )
            finally:
                await worker.stop()
                await fake.wait_for_webhooks()
                await merchant.aclose()
                await api.stop()


async def gather_all(*tasks: asyncio.Task[Any]) -> list[Any]:
    """Await background merchant calls; on the first failure the others are cancelled, so no
    request outlives its test."""
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for task in tasks:
            task.cancel()
