"""Airwallex misbehaving at the calls that move money: a burst of 5xx (500, 502, 503) at the
create, the confirm (the charge), the capture and the refund, and the capture's answer dropped
after Airwallex captured. The stack is deployed as the Stripe runs deploy it (`durapay worker` as a
child process configured through `DURAPAY_*`, the API in this process, PostgreSQL), with Airwallex
the default gateway and the fake Airwallex in this process.

The verdict comes from the fake's own ledger: one Payment Intent per payment, charged once, the
captured and refunded decimals equal to our store's, and every mutating call carrying the
`request_id` derived from the workflow's idempotency key.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from activities.gateways.airwallex.fake import CARD_SUCCESS, FakeAirwallex
from activities.gateways.airwallex.transform import request_id
from tests.faults.harness import AMOUNT_MINOR, Merchant, service_env, wait_until
from tests.faults.processes import TemporalServer, WorkerProcess
from tests.faults.report import FIGURES
from workers.api_server import start_api
from workers.config import load_config
from workers.worker import Runtime, connect
from workflows.client import workflow_id
from workflows.money import Amount

pytestmark = pytest.mark.faults

SCENARIO = "airwallex faults"


@dataclass
class AirwallexStack:
    fake: FakeAirwallex
    merchant: Merchant
    worker: WorkerProcess

    def burst(self, operation: str) -> None:
        """500, 502 and 503 in a row at `operation`, before Airwallex did anything."""
        for status in (500, 502, 503):
            self.fake.faults.fail_next(status, match=operation)
        FIGURES.faults["airwallex 5xx burst (500, 502, 503)"] += 1

    def drop(self, operation: str) -> None:
        self.fake.faults.drop_next(match=operation)
        FIGURES.faults["airwallex answer dropped after the work was done"] += 1

    async def pay(self, key: str, **body: str) -> dict:
        return await self.merchant.pay(key, gateway="airwallex", token=CARD_SUCCESS, **body)


@pytest_asyncio.fixture
async def airwallex(
    temporal_server: TemporalServer, faults_db_url: str, tmp_path: Path, task_queue: str
) -> AsyncIterator[AirwallexStack]:
    api_key = secrets.token_urlsafe(24)
    async with FakeAirwallex() as fake:
        env = {
            **service_env(
                temporal_address=temporal_server.address,
                task_queue=task_queue,
                db_url=faults_db_url,
                api_key=api_key,
            ),
            "DURAPAY_PAYMENT__DEFAULT_GATEWAY": "airwallex",
            "DURAPAY_PAYMENT__AIRWALLEX__ENABLED": "true",
            "DURAPAY_PAYMENT__AIRWALLEX__CLIENT_ID": fake.client_id,
            "DURAPAY_PAYMENT__AIRWALLEX__API_KEY": fake.api_key,
            "DURAPAY_PAYMENT__AIRWALLEX__WEBHOOK_SECRET": fake.webhook_secret,
            "DURAPAY_PAYMENT__AIRWALLEX__API_BASE": fake.base_url,
            "DURAPAY_PAYMENT__AIRWALLEX__HTTP__TIMEOUT_SECONDS": "2",
        }
        config = load_config(environ=env, use_default_file=False)
        async with await Runtime.open(config, migrate_database=True) as runtime:
            client = await connect(config)
            api = await start_api(client, config, runtime)
            merchant = Merchant(api.base_url, api_key)
            worker = WorkerProcess(env, tmp_path)
            try:
                await worker.start()
                yield AirwallexStack(fake=fake, merchant=merchant, worker=worker)
            finally:
                await worker.stop()
                await merchant.aclose()
                await api.stop()


async def test_airwallex_5xx_bursts_and_a_dropped_capture_answer(
    airwallex: AirwallexStack, unique: str, run: int
):
    merchant = airwallex.merchant
    expected: dict[str, tuple[str, int, int]] = {}  # payment id -> (status, captured, refunded)

    # Each fault in turn, so that it meets the call it was meant for.
    for operation in ("create", "confirm"):
        airwallex.burst(operation)
        paid = await airwallex.pay(f"{unique}-auth-{operation}")
        assert paid["status"] == "paid", paid
        expected[paid["id"]] = ("paid", AMOUNT_MINOR, 0)

    held = await airwallex.pay(f"{unique}-burst-capture", capture_method="manual")
    airwallex.burst("capture")
    assert (await merchant.capture(held["id"], f"{unique}-c1"))["status"] == "paid"
    expected[held["id"]] = ("paid", AMOUNT_MINOR, 0)

    held = await airwallex.pay(f"{unique}-drop-capture", capture_method="manual")
    assert held["status"] == "authorized", held
    airwallex.drop("capture")
    assert (await merchant.capture(held["id"], f"{unique}-c2"))["status"] == "paid"
    expected[held["id"]] = ("paid", AMOUNT_MINOR, 0)
    dropped = held["provider_payment_id"]

    paid = await airwallex.pay(f"{unique}-burst-refund")
    airwallex.burst("refund")
    assert (await merchant.refund(paid["id"], f"{unique}-r"))["status"] == "succeeded"
    expected[paid["id"]] = ("refunded", AMOUNT_MINOR, AMOUNT_MINOR)

    FIGURES.runs[SCENARIO] += 1
    FIGURES.payments += len(expected)
    problems: list[str] = []
    for payment_id, (status, captured, refunded) in expected.items():
        view = await _settled(merchant, payment_id, status)
        FIGURES.outcomes[view["status"]] += 1
        problems += _ledger_problems(airwallex.fake, payment_id, view, captured, refunded)
    FIGURES.gateway_replays += sum(1 for r in airwallex.fake.requests if r.replayed)
    assert not problems, "\n".join(problems)
    # The dropped capture was done once and answered again from Airwallex's saved answer.
    assert [r.replayed for r in airwallex.fake.posts("capture") if dropped in r.path] == [False, True]


async def _settled(merchant: Merchant, payment_id: str, status: str) -> dict:
    async def check() -> dict | None:
        response = await merchant.http.get(f"/v1/payments/{payment_id}", headers=merchant.headers())
        view = response.json()
        pending = any(r["status"] == "pending" for r in view.get("refunds", []))
        return view if view["status"] == status and not pending else None

    try:
        return await wait_until(check, timeout=60, what=f"{payment_id} to be {status}")
    except AssertionError:
        FIGURES.stuck_payments += 1
        raise


def _ledger_problems(
    fake: FakeAirwallex, payment_id: str, view: dict, captured: int, refunded: int
) -> list[str]:
    problems = []
    intents = fake.intents_for(payment_id)
    charges = fake.events_of("payment_intent.succeeded", payment_id)
    FIGURES.charges_per_payment[len(charges)] += 1
    if len(intents) != 1:
        problems.append(f"{payment_id}: {len(intents)} Payment Intents at Airwallex, expected 1")
    if len(charges) != 1:
        FIGURES.double_charges += len(charges) > 1
        problems.append(f"{payment_id}: charged {len(charges)} times at Airwallex")
    at_airwallex = (
        sum((Amount.of(i.captured_amount, i.currency).minor for i in intents), 0),
        sum(
            Amount.of(r.amount, r.currency).minor
            for r in fake.refunds_for(payment_id)
            if r.status != "FAILED"
        ),
    )
    ours = (Amount.of(view["captured_amount"], "USD").minor, Amount.of(view["refunded_amount"], "USD").minor)
    if not at_airwallex == ours == (captured, refunded):
        FIGURES.ledger_mismatches += 1
        problems.append(
            f"{payment_id}: captured/refunded at Airwallex {at_airwallex}, ours {ours}, expected {(captured, refunded)}"
        )
    workflow = workflow_id(payment_id)
    refund_keys = {request_id(f"{workflow}:refund:{r['id']}", "refund") for r in view.get("refunds", [])}
    allowed = {
        request_id(f"{workflow}:authorize", "create"),
        request_id(f"{workflow}:authorize", "confirm"),
        request_id(f"{workflow}:capture", "capture"),
        *refund_keys,
    }
    intent_ids = {i.id for i in intents}
    for request in fake.requests:
        ours_request = request.body.get("merchant_order_id") == payment_id or any(
            i in request.path for i in intent_ids
        )
        ours_request |= request.body.get("payment_intent_id") in intent_ids
        if ours_request and "request_id" in request.body and request.body["request_id"] not in allowed:
            problems.append(
                f"{payment_id}: {request.operation} carried request_id {request.body['request_id']!r}"
            )
    return problems
