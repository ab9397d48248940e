"""Stripe end to end: real HTTP into the real API, a real worker running PaymentWorkflow on the Temporal
dev server, the SQL store, and the Stripe adapter (the official SDK) talking to the fake Stripe
server, which sends its signed webhooks back to the real receiver.

One stack and one fake serve the whole module (each test has its own ids), so it stays in seconds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from activities.gateways.stripe.fake import FakeStripe
from tests.activities.gateways.helpers import serving
from tests.e2e.helpers import awaiting_customer, eventually, gateway_stack, post, until_status
from tests.stack import Stack
from workflows.client import workflow_id

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")

ACTION_TIMEOUT_SECONDS = 3  # how long a customer gets for 3-D Secure here

fake = serving(FakeStripe, scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stack(temporal_env, pg_url, fake: FakeStripe) -> AsyncIterator[Stack]:
    async with gateway_stack(
        temporal_env.client,
        "stripe",
        fake.gateway_section(),
        db_url=pg_url,  # the production store
        action_timeout_seconds=ACTION_TIMEOUT_SECONDS,
    ) as running:
        fake.webhook_url = f"{running.webhook_url}/stripe"
        yield running
        await fake.wait_for_webhooks()


@pytest_asyncio.fixture(autouse=True)
async def webhooks_acknowledged(fake: FakeStripe) -> AsyncIterator[None]:
    """Every webhook Stripe sent during the test was verified and acknowledged, known type or not."""
    yield
    await fake.wait_for_webhooks()
    assert [status for _, status in fake.deliveries if status != 200] == []


def payment(unique: str, token: str = "pm_card_visa", **fields: Any) -> dict[str, Any]:
    return {
        "order_id": f"order-{unique}",
        "amount": "49.99",
        "currency": "USD",
        "gateway": "stripe",
        "payment_method": {"type": "card", "token": token},
        **fields,
    }


def webhooks_answered(fake: FakeStripe, event_type: str, intent_id: str) -> list[int]:
    """HTTP statuses our receiver answered for `event_type` events about `intent_id`."""
    ids = {
        e["id"]
        for e in fake.events_of(event_type)
        if intent_id in (e["data"]["object"].get("id"), e["data"]["object"].get("payment_intent"))
    }
    return [status for event_id, status in fake.deliveries if event_id in ids]


async def test_instant_success(stack, http, fake, unique):
    created = await post(http, stack, "/v1/payments", payment(unique), unique)

    assert created.status_code == 201, created.text
    paid = created.json()
    assert (paid["status"], paid["gateway"], paid["captured_amount"]) == ("paid", "stripe", "49.99")
    [intent] = fake.intents_for(paid["id"])
    assert paid["provider_payment_id"] == intent["id"]
    assert intent["metadata"]["durapay_order_id"] == f"order-{unique}"
    assert [c["amount_captured"] for c in fake.charges_for(paid["id"])] == [4999]
    # Stripe's webhook for it reached the receiver, was verified and acknowledged.
    await fake.wait_for_webhooks()
    assert webhooks_answered(fake, "payment_intent.succeeded", intent["id"]) == [200]


async def test_decline(stack, http, fake, unique):
    created = await post(http, stack, "/v1/payments", payment(unique, "pm_card_chargeDeclined"), unique)

    assert created.status_code == 402, created.text
    failed = created.json()
    assert failed["status"] == "failed"
    assert (failed["failure"]["code"], failed["failure"]["decline_code"]) == (
        "card_declined",
        "generic_decline",
    )
    assert fake.charges_for(failed["id"]) == []


async def test_three_ds_then_success(stack, http, fake, unique):
    body = payment(unique, "pm_card_threeDSecure2Required", return_url="https://shop.example/return")
    waiting = await awaiting_customer(http, stack, body, unique)
    assert waiting["status"] == "authorizing"
    assert waiting["next_action"]["type"] == "redirect_to_url"

    async with httpx.AsyncClient() as browser:
        challenge = await browser.get(waiting["next_action"]["url"])
    assert challenge.status_code == 302
    returned = httpx.URL(challenge.headers["location"])
    back = {
        "payment_intent": returned.params["payment_intent"],
        "redirect_status": returned.params["redirect_status"],
    }
    completed = await post(
        http, stack, f"/v1/payments/{waiting['id']}/actions/complete", {"data": back}, f"{unique}-back"
    )

    assert completed.status_code == 200, completed.text
    # The lookup after the return (or Stripe's webhook, whichever came first) settled it.
    assert await eventually(until_status(http, stack, waiting["id"], "paid")) is not None
    assert len(fake.charges_for(waiting["id"])) == 1


async def test_three_ds_abandoned(stack, http, fake, unique):
    waiting = await awaiting_customer(http, stack, payment(unique, "pm_card_authenticationRequired"), unique)
    assert waiting["next_action"]["type"] == "use_sdk"

    gave_up = await eventually(
        until_status(http, stack, waiting["id"], "cancelled"), timeout=ACTION_TIMEOUT_SECONDS + 15
    )

    assert gave_up is not None
    assert gave_up["failure"]["code"] == "action_timeout"
    [intent] = fake.intents_for(waiting["id"])
    assert (intent["status"], intent["cancellation_reason"]) == ("canceled", "abandoned")
    assert fake.charges_for(waiting["id"]) == []


async def test_manual_capture_partial(stack, http, fake, unique):
    created = await post(http, stack, "/v1/payments", payment(unique, capture_method="manual"), unique)
    assert (created.status_code, created.json()["status"]) == (201, "authorized"), created.text

    captured = await post(
        http, stack, f"/v1/payments/{created.json()['id']}/capture", {"amount": "20.00"}, f"{unique}-c1"
    )

    assert captured.status_code == 200, captured.text
    assert (captured.json()["status"], captured.json()["captured_amount"]) == ("paid", "20.00")
    [charge] = fake.charges_for(created.json()["id"])
    assert (charge["amount"], charge["amount_captured"]) == (4999, 2000)
    [capture] = fake.posts(f"/v1/payment_intents/{charge['payment_intent']}/capture")
    assert capture.idempotency_key == f"{workflow_id(created.json()['id'])}:capture"


async def test_several_partial_refunds(stack, http, fake, unique):
    created = await post(http, stack, "/v1/payments", payment(unique), unique)
    payment_id = created.json()["id"]
    path = f"/v1/payments/{payment_id}/refunds"

    first = await post(
        http, stack, path, {"amount": "10.00", "reason": "requested_by_customer"}, f"{unique}-r1"
    )
    second = await post(http, stack, path, {"amount": "15.00", "reason": "damaged"}, f"{unique}-r2")

    assert (first.status_code, second.status_code) == (201, 201), (first.text, second.text)
    assert [first.json()["status"], second.json()["status"]] == ["succeeded", "succeeded"]
    at_stripe = sorted(
        (r for r in fake.refunds.values() if r["metadata"].get("durapay_payment_id") == payment_id),
        key=lambda r: r["amount"],
    )
    assert [(r["amount"], r["metadata"]["durapay_refund_id"]) for r in at_stripe] == [
        (1000, first.json()["id"]),
        (1500, second.json()["id"]),
    ]
    intent_id = at_stripe[0]["payment_intent"]
    keys = [p.idempotency_key for p in fake.posts("/v1/refunds") if p.params["payment_intent"] == intent_id]
    assert keys == [
        f"{workflow_id(payment_id)}:refund:{first.json()['id']}",
        f"{workflow_id(payment_id)}:refund:{second.json()['id']}",
    ]
    view = await eventually(until_status(http, stack, payment_id, "partially_refunded"))
    assert view is not None and view["refunded_amount"] == "25.00"


async def test_dispute_opened_by_webhook(stack, http, fake, unique):
    created = await post(http, stack, "/v1/payments", payment(unique), unique)
    payment_id = created.json()["id"]

    fake.open_dispute(created.json()["provider_payment_id"], reason="fraudulent")

    # The dispute carries only Stripe's intent id: the receiver maps it to our payment via the store.
    view = await eventually(until_status(http, stack, payment_id, "disputed"))
    assert view is not None
    [dispute] = view["disputes"]
    assert (dispute["status"], dispute["reason"]) == ("needs_response", "fraudulent")


async def test_a_dropped_response_still_charges_exactly_once(stack, http, fake, unique):
    fake.drop_response_next(path="/v1/payment_intents")

    created = await post(http, stack, "/v1/payments", payment(unique), unique)

    assert created.status_code == 201, created.text
    assert created.json()["status"] == "paid"
    payment_id = created.json()["id"]
    key = f"{workflow_id(payment_id)}:authorize"
    creates = [r for r in fake.posts("/v1/payment_intents") if r.idempotency_key == key]
    assert [r.replayed for r in creates] == [False, True]  # the retry heard Stripe's saved answer
    assert len(fake.intents_for(payment_id)) == 1
    assert len(fake.charges_for(payment_id)) == 1


async def test_saved_payment_method_end_to_end(stack, http, fake, unique):
    """A customer, a card saved at Stripe (its customer created there on first use), paid with."""
    created = await post(
        http, stack, "/v1/customers", {"email": "ada@example.com", "name": "Ada"}, f"{unique}-c"
    )
    assert created.status_code == 201, created.text
    customer = created.json()
    saved = await post(
        http,
        stack,
        f"/v1/customers/{customer['id']}/payment_methods",
        {"gateway": "stripe", "token": "pm_card_visa"},
        f"{unique}-pm",
    )
    assert saved.status_code == 201, saved.text
    method = saved.json()
    assert (method["brand"], method["last4"], method["exp_month"], method["exp_year"]) == (
        "visa",
        "4242",
        12,
        2034,
    )
    # At Stripe: one customer for ours, with the method attached to it.
    [stripe_customer] = [c for c in fake.customers.values() if c.get("email") == "ada@example.com"]
    attached = [m for m in fake.payment_methods.values() if m["customer"] == stripe_customer["id"]]
    assert [m["card"]["last4"] for m in attached] == ["4242"]

    paid = await post(
        http,
        stack,
        "/v1/payments",
        payment(unique, customer_id=None) | {"payment_method": {"type": "saved", "id": method["id"]}},
        unique,
    )
    assert paid.status_code == 201, paid.text
    view = paid.json()
    assert (view["status"], view["customer_id"], view["payment_method"]["last4"]) == (
        "paid",
        customer["id"],
        "4242",
    )
    # Stripe charged the saved method, with the Stripe customer it belongs to.
    [intent] = fake.intents_for(view["id"])
    assert (intent["customer"], intent["payment_method"]) == (stripe_customer["id"], attached[0]["id"])

    # Detached at Stripe too.
    detached = await http.delete(
        f"/v1/customers/{customer['id']}/payment_methods/{method['id']}", headers=stack.headers()
    )
    assert detached.status_code == 200 and detached.json()["detached"] is True
    assert fake.payment_methods[attached[0]["id"]]["customer"] is None
