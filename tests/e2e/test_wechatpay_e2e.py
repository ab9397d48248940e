"""WeChat Pay end to end: real HTTP into the real API, a real worker running PaymentWorkflow on the
Temporal dev server, the SQL store, the WeChat Pay adapter talking to the fake WeChat Pay, whose
signed and encrypted notifications go to the real webhook receiver.

One stack and one fake serve the whole module (each test has its own ids).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest_asyncio

from activities.gateways.wechat_pay.fake import FakeWechatPay
from tests.activities.gateways.helpers import serving
from tests.e2e.helpers import (
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

ACTION_TIMEOUT_SECONDS = 5  # how long a customer gets to scan here

fake = serving(FakeWechatPay, scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stack(temporal_env, tmp_path_factory, fake: FakeWechatPay) -> AsyncIterator[Stack]:
    db = tmp_path_factory.mktemp("wechat-e2e") / "durapay.db"
    async with gateway_stack(
        temporal_env.client,
        "wechat_pay",
        fake.gateway_section(),
        db_url=f"sqlite+aiosqlite:///{db}",
        action_timeout_seconds=ACTION_TIMEOUT_SECONDS,
        status_poll_seconds=1,
    ) as running:
        yield running


def payment(unique: str, flow: str = "native", amount: str = "88.88", **fields: Any) -> dict[str, Any]:
    return wallet_payment(unique, "wechat_pay", flow, amount=amount, description="龙井茶 250g", **fields)


async def new_payment(http: httpx.AsyncClient, stack: Stack, unique: str, **fields: Any) -> dict[str, Any]:
    return await awaiting_customer(http, stack, payment(unique, **fields), unique)


async def test_qr_paid_by_notification(stack, http, fake, unique):
    waiting = await new_payment(http, stack, unique)
    payment_id = waiting["id"]
    assert waiting["status"] == "authorizing"
    trade = fake.trades[payment_id]
    assert waiting["next_action"]["type"] == "display_qr_code"
    assert waiting["next_action"]["qr_code"] == trade.artifact["code_url"]
    assert waiting["next_action"]["expires_at"] is not None
    assert (trade.total, trade.currency, trade.description) == (8888, "CNY", "龙井茶 250g")

    fake.pay(payment_id)
    status, body = await notify(stack, "wechat_pay", *fake.payment_notification(payment_id))

    assert (status, body) == (204, "")
    paid = await eventually(until_status(http, stack, payment_id, "paid"))
    assert paid is not None
    assert (paid["captured_amount"], paid["provider_payment_id"]) == ("88.88", trade.transaction_id)
    assert paid["next_action"] is None
    assert "webhook.received" in await event_types(stack, payment_id)


async def test_qr_expired_closes_the_trade(stack, http, fake, unique):
    waiting = await new_payment(http, stack, unique)

    gave_up = await eventually(
        until_status(http, stack, waiting["id"], "cancelled"), timeout=ACTION_TIMEOUT_SECONDS + 20
    )

    assert gave_up is not None and gave_up["failure"]["code"] == "action_timeout"
    assert fake.trades[waiting["id"]].trade_state == "CLOSED"
    assert ("POST", f"/v3/pay/transactions/out-trade-no/{waiting['id']}/close") in fake.requests


async def test_h5_redirect_paid_then_customer_returns(stack, http, fake, unique):
    waiting = await new_payment(
        http, stack, unique, flow="h5", customer_ip="203.0.113.7", return_url="https://shop.example/back"
    )
    assert waiting["next_action"]["type"] == "redirect_to_url"
    assert waiting["next_action"]["url"].startswith(fake.trades[waiting["id"]].artifact["h5_url"])

    fake.pay(waiting["id"])  # the customer paid on WeChat's H5 cashier; no notification yet
    completed = await post(
        http, stack, f"/v1/payments/{waiting['id']}/actions/complete", {"data": {}}, f"{unique}-back"
    )

    assert completed.status_code in (200, 202), completed.text
    assert await eventually(until_status(http, stack, waiting["id"], "paid")) is not None


async def paid_payment(
    http: httpx.AsyncClient, stack: Stack, fake: FakeWechatPay, unique: str, amount: str
) -> str:
    waiting = await new_payment(http, stack, unique, amount=amount)
    fake.pay(waiting["id"])
    assert (await notify(stack, "wechat_pay", *fake.payment_notification(waiting["id"])))[0] == 204
    assert await eventually(until_status(http, stack, waiting["id"], "paid")) is not None
    return waiting["id"]


async def test_partial_refunds_and_their_notifications(stack, http, fake, unique):
    payment_id = await paid_payment(http, stack, fake, unique, "100.00")
    path = f"/v1/payments/{payment_id}/refunds"

    first = await post(http, stack, path, {"amount": "30.00", "reason": "damaged"}, f"{unique}-r1")
    second = await post(http, stack, path, {"amount": "20.00"}, f"{unique}-r2")

    assert (first.status_code, second.status_code) == (201, 201), (first.text, second.text)
    assert [first.json()["status"], second.json()["status"]] == ["succeeded", "succeeded"]
    at_wechat = {no: r.amount for no, r in fake.refunds.items() if r.out_trade_no == payment_id}
    assert at_wechat == {
        f"{payment_id}-{first.json()['id']}": 3000,
        f"{payment_id}-{second.json()['id']}": 2000,
    }
    assert first.json()["provider_refund_id"] == fake.refunds[f"{payment_id}-{first.json()['id']}"].refund_id

    # WeChat's REFUND.SUCCESS notification for a refund already counted changes nothing.
    status, _ = await notify(
        stack, "wechat_pay", *fake.refund_notification(f"{payment_id}-{first.json()['id']}")
    )
    assert status == 204
    view = await eventually(until_status(http, stack, payment_id, "partially_refunded"))
    assert view is not None and view["refunded_amount"] == "50.00"


async def test_refund_pending_until_wechat_notifies_success(stack, http, fake, unique):
    payment_id = await paid_payment(http, stack, fake, unique, "10.00")
    fake.refund_outcome = "PROCESSING"
    try:
        pending = await post(
            http, stack, f"/v1/payments/{payment_id}/refunds", {"amount": "4.00"}, f"{unique}-r"
        )
    finally:
        fake.refund_outcome = "SUCCESS"
    assert (pending.status_code, pending.json()["status"]) == (202, "pending"), pending.text

    refund_no = f"{payment_id}-{pending.json()['id']}"
    fake.settle_refund(refund_no)
    assert (await notify(stack, "wechat_pay", *fake.refund_notification(refund_no)))[0] == 204

    view = await eventually(until_status(http, stack, payment_id, "partially_refunded"))
    assert (
        view is not None and view["refunds"][0]["status"] == "succeeded" and view["refunded_amount"] == "4.00"
    )


async def test_notification_with_a_bad_signature_is_refused(stack, http, fake, unique):
    waiting = await new_payment(http, stack, unique)
    fake.pay(waiting["id"])
    headers, body = fake.payment_notification(waiting["id"])
    forged = body.replace(b'"summary":"', b'"summary":"forged ')

    status, _ = await notify(stack, "wechat_pay", headers, forged)

    assert status == 400
    assert "webhook.received" not in await event_types(stack, waiting["id"])


async def test_stale_or_replayed_notification_is_refused(stack, http, fake, unique):
    waiting = await new_payment(http, stack, unique)
    fake.pay(waiting["id"])

    stale = fake.payment_notification(waiting["id"], timestamp=int(time.time()) - 600)
    assert (await notify(stack, "wechat_pay", *stale))[0] == 400
    assert "webhook.received" not in await event_types(stack, waiting["id"])


async def test_duplicate_notification_is_applied_once(stack, http, fake, unique):
    waiting = await new_payment(http, stack, unique)
    fake.pay(waiting["id"])
    event_id = f"EV-{unique}"

    # WeChat resends the same notification (same id), freshly signed each time.
    first = await notify(stack, "wechat_pay", *fake.payment_notification(waiting["id"], event_id=event_id))
    second = await notify(stack, "wechat_pay", *fake.payment_notification(waiting["id"], event_id=event_id))

    assert (first[0], second[0]) == (204, 204)
    paid = await eventually(until_status(http, stack, waiting["id"], "paid"))
    assert paid is not None and paid["captured_amount"] == "88.88"
    assert await received_event_ids(stack, waiting["id"]) == [event_id]


async def test_notification_whose_amount_does_not_match_is_not_a_payment(stack, http, fake, unique):
    waiting = await new_payment(http, stack, unique)
    trade = fake.trades[waiting["id"]]
    resource = fake._trade_json(trade) | {
        "trade_state": "SUCCESS",
        "transaction_id": "4200000000000000000000000001",
        "amount": {"total": 1, "payer_total": 1, "currency": "CNY", "payer_currency": "CNY"},
    }
    headers, body = fake.notification(
        "TRANSACTION.SUCCESS", resource, original_type="transaction", summary="支付成功"
    )

    status, _ = await notify(stack, "wechat_pay", headers, body)

    assert status == 204  # genuine and acknowledged: the amount check is the workflow's
    assert (
        await eventually(until_event(stack, waiting["id"], "webhook.amount_mismatch"), timeout=10) is not None
    )
    view = await payment_view(http, stack, waiting["id"])
    assert (view["status"], view["captured_amount"]) == ("authorizing", "0.00")


async def test_saved_payment_methods_are_refused_naming_the_gateway(stack, http, fake, unique):
    """WeChat Pay keeps no customers: saving a method there, or paying there with one saved
    elsewhere, is a clear 422 that names the gateway, and nothing reaches WeChat Pay."""
    trades_before = len(fake.trades)
    customer = (await post(http, stack, "/v1/customers", {}, f"{unique}-c")).json()
    methods = f"/v1/customers/{customer['id']}/payment_methods"
    refused = await post(http, stack, methods, {"gateway": "wechat_pay", "token": "tok_visa"}, f"{unique}-w")
    assert refused.status_code == 422, refused.text
    problem = refused.json()
    assert (problem["code"], problem["gateway"]) == ("saved_payment_methods_not_supported", "wechat_pay")
    assert "wechat_pay" in problem["detail"]
    assert (await http.get(methods, headers=stack.headers())).json()["data"] == []

    on_mock = (
        await post(http, stack, methods, {"gateway": "mock", "token": "tok_visa"}, f"{unique}-m")
    ).json()
    paying = payment(unique) | {"payment_method": {"type": "saved", "id": on_mock["id"]}}
    refused = await post(http, stack, "/v1/payments", paying, f"{unique}-pay")
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["pointer"] == "/gateway"
    assert "'wechat_pay' cannot charge saved payment method" in refused.json()["detail"]
    assert len(fake.trades) == trades_before
