"""`durapay worker` killed -9 at each step of a payment, then started again: right after the fraud
check, while Stripe works on the authorization, between authorization and capture (manual capture),
while Stripe works on the capture, and while it works on a refund.

Nothing of the dead worker survives but what Temporal recorded. A gateway call it had sent is
retried once its start-to-close timeout (30 s) has passed, with the same idempotency key, and Stripe
answers from its idempotency cache: the card is charged, captured and refunded once. The kills
follow each other without waiting for the recovery, so the run waits for those timeouts only once.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.faults.harness import (
    AMOUNT_MINOR,
    Expect,
    FaultStack,
    gather_all,
    wait_until,
)
from tests.faults.invariants import check_run
from workflows.client import workflow_id
from workflows.domain import PaymentStatus

pytestmark = pytest.mark.faults


async def test_worker_killed_at_every_step(stack: FaultStack, unique: str, run: int) -> None:
    merchant, store = stack.merchant, stack.store
    requests: list[asyncio.Task] = []
    paid = {"status": PaymentStatus.PAID, "captured_minor": AMOUNT_MINOR}
    expected: list[Expect] = []

    # 1. After the fraud check: `payment.created` is recorded by the step right after it, in the
    #    same workflow task that schedules the authorization. Killed there, the whole task is lost
    #    and done again by the next worker.
    key = f"{unique}-after-fraud"
    pid = stack.payment_id(key)
    requests.append(asyncio.create_task(merchant.pay(key)))

    async def fraud_checked() -> bool:
        return any(e.type == "payment.created" for e in await store.events(pid))

    await wait_until(fraud_checked, timeout=30, what="the fraud check of the first payment")
    await stack.restart_worker("after the fraud check")
    expected.append(Expect(pid, **paid))

    # 2. During the authorization: Stripe has the request and will charge the card; the worker
    #    that asked dies before the answer.
    key = f"{unique}-authorizing"
    pid = stack.payment_id(key)
    requests.append(
        await stack.held_call("/v1/payment_intents", f"{workflow_id(pid)}:authorize", merchant.pay(key))
    )
    await stack.restart_worker("during the authorization")
    expected.append(Expect(pid, **paid))

    # 3. After the authorization, before the capture: the capture request arrives while no worker
    #    runs and waits for the next one.
    authorized = await merchant.pay(f"{unique}-authorized", capture_method="manual")
    assert authorized["status"] == "authorized", authorized
    await stack.kill_worker("between authorization and capture")
    requests.append(asyncio.create_task(merchant.capture(authorized["id"], f"{unique}-capture-1")))
    await stack.start_worker()
    expected.append(Expect(authorized["id"], **paid))

    # 4. During the capture.
    authorized = await merchant.pay(f"{unique}-capturing", capture_method="manual")
    assert authorized["status"] == "authorized", authorized
    pid = authorized["id"]
    path = f"/v1/payment_intents/{authorized['provider_payment_id']}/capture"
    requests.append(
        await stack.held_call(
            path, f"{workflow_id(pid)}:capture", merchant.capture(pid, f"{unique}-capture-2")
        )
    )
    await stack.restart_worker("during the capture")
    expected.append(Expect(pid, **paid))

    # 5. During a refund.
    payment = await merchant.pay(f"{unique}-refunding")
    assert payment["status"] == "paid", payment
    pid = payment["id"]
    refund_key = f"{unique}-refund"
    stripe_key = f"{workflow_id(pid)}:refund:{stack.refund_id(pid, refund_key)}"
    requests.append(await stack.held_call("/v1/refunds", stripe_key, merchant.refund(pid, refund_key)))
    await stack.restart_worker("during a refund")
    expected.append(Expect(pid, PaymentStatus.REFUNDED, AMOUNT_MINOR, AMOUNT_MINOR))

    answers = await gather_all(*requests)
    # The captures and the refund answer once their retried gateway call is through.
    assert [a["status"] for a in answers[2:]] == ["paid", "paid", "succeeded"], answers
    await check_run(stack, expected, scenario="worker kill -9")
