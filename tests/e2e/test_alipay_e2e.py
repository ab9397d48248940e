"""AliPay end to end: real HTTP into the real API, a real worker running PaymentWorkflow on the
Temporal dev server, the SQL store, the AliPay adapter talking to the fake AliPay gateway, whose
signed form notifications go to the real webhook receiver.

One stack and one fake serve the whole module (each test has its own ids).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest_asyncio
from temporalio.api.enums.v1 import EventType

from activities.gateways.alipay.fake import FakeAlipay
from tests.activities.gateways.helpers import serving
from tests.e2e.helpers import (
    Check,
    awaiting_customer,
    event_types,
    eventually,
    gateway_stack,
    notify,
    payment_view,
    post,
    received_event_ids,
    until_event,
    until_status,
    wallet_payment,
)
from tests.stack import Stack
from workflows.activity_names import LOOKUP

ACTION_TIMEOUT_SECONDS = 5  # how long a customer gets to pay here

fake = serving(FakeAlipay, scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stack(temporal_env, tmp_path_factory, fake: FakeAlipay) -> AsyncIterator[Stack]:
    db = tmp_path_factory.mktemp("alipay-e2e") / "durapay.db"
    async with gateway_stack(
        temporal_env.client,
        "alipay",
        fake.gateway_section(),
        db_url=f"sqlite+aiosqlite:///{db}",
        action_timeout_seconds=ACTION_TIMEOUT_SECONDS,
        status_poll_seconds=1,
    ) as running:
        yield running


def payment(unique: str, flow: str = "precreate", amount: str = "88.88", **fields: Any) -> dict[str, Any]:
    return wallet_payment(unique, "alipay", flow, amount=amount, description="测试商品", **fields)


async def new_payment(http: httpx.AsyncClient, stack: Stack, unique: str, **fields: Any) -> dict[str, Any]:
    return await awaiting_customer(http, stack, payment(unique, **fields), unique)


async def test_qr_paid_by_notification(stack, http, fake, unique):
    waiting = await new_payment(http, stack, unique)
    payment_id = waiting["id"]
    trade = fake.trades[payment_id]
    assert waiting["next_action"]["type"] == "display_qr_code"
    assert waiting["next_action"]["qr_code"] == trade.qr_code
    assert (str(trade.total_amount), trade.subject) == ("88.88", "测试商品")

    fake.pay(payment_id)
    status, answer = await notify(stack, "alipay", *fake.trade_notification(payment_id))

    assert (status, answer) == (200, "success")
    paid = await eventually(until_status(http, stack, payment_id, "paid"))
    assert paid is not None and (paid["captured_amount"], paid["provider_payment_id"]) == (
        "88.88",
        trade.trade_no,
    )
    assert "webhook.received" in await event_types(stack, payment_id)


async def test_qr_expired_closes_the_trade(stack, http, fake, unique):
    waiting = await new_payment(http, stack, unique)

    gave_up = await eventually(
        until_status(http, stack, waiting["id"], "cancelled"), timeout=ACTION_TIMEOUT_SECONDS + 20
    )

    assert gave_up is not None and gave_up["failure"]["code"] == "action_timeout"
    assert fake.trades[waiting["id"]].trade_status == "TRADE_CLOSED"
    assert "alipay.trade.close" in fake.calls


async def test_page_redirect_paid_then_customer_returns(stack, http, fake, unique):
    waiting = await new_payment(http, stack, unique, flow="page", return_url="https://shop.example/back")
    action = waiting["next_action"]
    assert action["type"] == "redirect_to_url" and action["url"].startswith(fake.gateway_url)
    assert dict(parse_qsl(action["url"].split("?", 1)[1]))["return_url"] == "https://shop.example/back"

    assert await fake.open(action["url"]) == 200  # the customer's browser reaches AliPay's cashier
    fake.pay(waiting["id"])
    completed = await post(
        http, stack, f"/v1/payments/{waiting['id']}/actions/complete", {"data": {}}, f"{unique}-back"
    )

    assert completed.status_code in (200, 202), completed.text
    paid = await eventually(until_status(http, stack, waiting["id"], "paid"))
    assert paid is not None and paid["captured_amount"] == "88.88"


async def paid_payment(
    http: httpx.AsyncClient, stack: Stack, fake: FakeAlipay, unique: str, amount: str
) -> str:
    waiting = await new_payment(http, stack, unique, amount=amount)
    fake.pay(waiting["id"])
    assert await notify(stack, "alipay", *fake.trade_notification(waiting["id"])) == (200, "success")
    assert await eventually(until_status(http, stack, waiting["id"], "paid")) is not None
    return waiting["id"]


async def test_partial_refunds_and_the_refund_notification(stack, http, fake, unique):
    payment_id = await paid_payment(http, stack, fake, unique, "100.00")
    path = f"/v1/payments/{payment_id}/refunds"

    first = await post(http, stack, path, {"amount": "30.00", "reason": "damaged"}, f"{unique}-r1")
    second = await post(http, stack, path, {"amount": "20.50"}, f"{unique}-r2")

    assert (first.status_code, second.status_code) == (201, 201), (first.text, second.text)
    assert [first.json()["status"], second.json()["status"]] == ["succeeded", "succeeded"]
    refunds = {no: str(amount) for no, amount in fake.trades[payment_id].refunds.items()}
    assert refunds == {first.json()["id"]: "30.00", second.json()["id"]: "20.50"}

    # AliPay's notification of the first refund (out_biz_no = out_request_no) changes nothing more.
    assert await notify(stack, "alipay", *fake.refund_notification(payment_id, first.json()["id"])) == (
        200,
        "success",
    )
    view = await eventually(until_status(http, stack, payment_id, "partially_refunded"))
    assert view is not None and view["refunded_amount"] == "50.50"


async def test_notification_with_a_bad_signature_is_refused(stack, http, fake, unique):
    waiting = await new_payment(http, stack, unique)
    fake.pay(waiting["id"])
    headers, body = fake.trade_notification(waiting["id"])
    params = dict(parse_qsl(body.decode()))
    params["total_amount"] = "0.01"

    status, answer = await notify(stack, "alipay", headers, urlencode(params).encode())

    assert status == 400 and answer != "success"
    assert "webhook.received" not in await event_types(stack, waiting["id"])


async def test_notification_for_another_app_is_refused(stack, http, fake, unique):
    waiting = await new_payment(http, stack, unique)
    fake.pay(waiting["id"])
    status, _ = await notify(
        stack, "alipay", *fake.trade_notification(waiting["id"], app_id="2021009999999999")
    )
    assert status == 400


async def test_replayed_notification_is_applied_once(stack, http, fake, unique):
    """AliPay has no timestamp to bound replays: a resent or replayed notify_id is de-duplicated."""
    waiting = await new_payment(http, stack, unique)
    fake.pay(waiting["id"])
    delivery = fake.trade_notification(waiting["id"])

    first = await notify(stack, "alipay", *delivery)
    replay = await notify(stack, "alipay", *delivery)

    assert first == replay == (200, "success")
    assert await eventually(until_status(http, stack, waiting["id"], "paid")) is not None
    notify_id = dict(parse_qsl(delivery[1].decode()))["notify_id"]
    assert await received_event_ids(stack, waiting["id"]) == [notify_id]


async def test_notification_whose_amount_does_not_match_is_not_a_payment(stack, http, fake, unique):
    waiting = await new_payment(http, stack, unique)
    # Correctly signed by AliPay, but for another amount than this payment's.
    headers, body = fake.trade_notification(waiting["id"], trade_status="TRADE_SUCCESS", total_amount="0.01")

    assert await notify(stack, "alipay", headers, body) == (200, "success")
    assert (
        await eventually(until_event(stack, waiting["id"], "webhook.amount_mismatch"), timeout=10) is not None
    )
    view = await payment_view(http, stack, waiting["id"])
    assert (view["status"], view["captured_amount"]) == ("authorizing", "0.00")


def lookups_answered(stack: Stack, payment_id: str, count: int) -> Check:
    """A check for `eventually`: True once `count` of the payment's gateway lookups have returned
    and a workflow task has completed after the last of them (the workflow has acted on it)."""

    async def check() -> bool | None:
        lookups: set[int] = set()
        answered = 0
        async for event in stack.client.get_workflow_handle(f"payment-{payment_id}").fetch_history_events():
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                if event.activity_task_scheduled_event_attributes.activity_type.name == LOOKUP:
                    lookups.add(event.event_id)
            elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
                answered += event.activity_task_completed_event_attributes.scheduled_event_id in lookups
            elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED and answered >= count:
                return True
        return None

    return check


async def test_page_not_yet_opened_keeps_waiting_for_the_customer(stack, http, fake, unique):
    """AliPay creates a page trade only when the customer opens it: the workflow's polls in between
    must not read "no such trade" as a failure (LookupCall.method tells the adapter the flow)."""
    waiting = await new_payment(http, stack, unique, flow="page")
    payment_id = waiting["id"]

    # A couple of status polls (status_poll_seconds = 1) find no trade yet, and the workflow has
    # acted on both answers.
    assert await eventually(lookups_answered(stack, payment_id, 2)) is True

    view = await payment_view(http, stack, payment_id)
    assert view["status"] == "authorizing", view.get("failure")
    assert await fake.open(waiting["next_action"]["url"]) == 200
    fake.pay(payment_id)
    assert await notify(stack, "alipay", *fake.trade_notification(payment_id)) == (200, "success")
    assert await eventually(until_status(http, stack, payment_id, "paid")) is not None
