"""PayPal end to end: real HTTP into the real API, a real worker running PaymentWorkflow on the Temporal
dev server, PostgreSQL, and the PayPal adapter talking to the fake PayPal, whose approval page the
tests open like the payer's browser, and whose signed webhooks they deliver to the real receiver
(which has PayPal's verify-webhook-signature check them).

One stack and one fake serve the whole module (each test has its own ids).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from activities.gateways.paypal.adapter import PayPalGateway
from activities.gateways.paypal.fake import FakePayPal
from activities.gateways.paypal.settings import PayPalSettings
from activities.gateways.paypal.testkit import approve
from tests.activities.gateways.helpers import serving
from tests.e2e.helpers import (
    awaiting_customer,
    eventually,
    gateway_stack,
    notify,
    post,
    received_event_ids,
    until_status,
)
from tests.stack import Stack
from workflows.client import workflow_id
from workflows.gateway_io import GatewayPaymentStatus, LookupCall
from workflows.money import Amount

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")

ACTION_TIMEOUT_SECONDS = 3  # how long a payer gets to approve here
RETURN_URL = "https://shop.example/return"

fake = serving(FakePayPal, scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stack(temporal_env, pg_url, fake: FakePayPal) -> AsyncIterator[Stack]:
    async with gateway_stack(
        temporal_env.client,
        "paypal",
        fake.gateway_section(),
        db_url=pg_url,
        action_timeout_seconds=ACTION_TIMEOUT_SECONDS,
        status_poll_seconds=1,
    ) as running:
        yield running


def payment(unique: str, **fields: Any) -> dict[str, Any]:
    return {
        "order_id": f"order-{unique}",
        "amount": "49.99",
        "currency": "USD",
        "gateway": "paypal",
        "payment_method": {"type": "wallet", "wallet": "paypal"},
        "return_url": RETURN_URL,
        **fields,
    }


def the_order(fake: FakePayPal, payment_id: str) -> dict[str, Any]:
    [order] = fake.orders_for(payment_id)
    return order


def payments_of(fake: FakePayPal, payment_id: str) -> dict[str, list[dict[str, Any]]]:
    return the_order(fake, payment_id)["purchase_units"][0].get("payments") or {}


async def approved_and_back(
    http, stack, unique: str, waiting: dict[str, Any], funding: str = "balance"
) -> Any:
    """The payer approves on PayPal's page and the shop reports the return."""
    back = await approve(waiting["next_action"]["url"], funding=funding)
    assert back["token"] == waiting["provider_payment_id"] and back["PayerID"]
    return await post(
        http, stack, f"/v1/payments/{waiting['id']}/actions/complete", {"data": back}, f"{unique}-back"
    )


async def paid_payment(http, stack, unique: str, **fields: Any) -> str:
    waiting = await awaiting_customer(http, stack, payment(unique, **fields), unique)
    completed = await approved_and_back(http, stack, unique, waiting)
    assert completed.status_code == 200, completed.text
    assert await eventually(until_status(http, stack, waiting["id"], "paid")) is not None
    return str(waiting["id"])


async def test_approval_then_capture(stack, http, fake, unique):
    waiting = await awaiting_customer(http, stack, payment(unique), unique)
    assert (waiting["status"], waiting["next_action"]["type"]) == ("authorizing", "redirect_to_url")
    assert payments_of(fake, waiting["id"]) == {}  # nothing moves before the approval

    completed = await approved_and_back(http, stack, unique, waiting)

    assert completed.status_code == 200, completed.text
    view = await eventually(until_status(http, stack, waiting["id"], "paid"))
    assert view is not None and view["captured_amount"] == "49.99"
    order = the_order(fake, waiting["id"])
    assert order["status"] == "COMPLETED" and order["id"] == view["provider_payment_id"]
    assert [c["amount"]["value"] for c in order["purchase_units"][0]["payments"]["captures"]] == ["49.99"]
    creates = [rid for path, rid, _ in fake.requests if path == "/v2/checkout/orders"]
    assert f"{workflow_id(waiting['id'])}:authorize" in creates


async def test_capture_denied_is_a_decline(stack, http, fake, unique):
    waiting = await awaiting_customer(http, stack, payment(unique), unique)

    await approved_and_back(http, stack, unique, waiting, funding="declined")

    failed = await eventually(until_status(http, stack, waiting["id"], "failed"))
    assert failed is not None and failed["failure"]["code"] == "payment_declined"
    [capture] = payments_of(fake, waiting["id"])["captures"]
    assert capture["status"] == "DECLINED"


async def test_approval_known_from_the_webhook_alone(stack, http, fake, unique):
    waiting = await awaiting_customer(http, stack, payment(unique), unique)
    await approve(waiting["next_action"]["url"])  # the payer never comes back to the shop
    [approved] = [
        e
        for e in fake.events_of("CHECKOUT.ORDER.APPROVED")
        if e["resource"]["id"] == waiting["provider_payment_id"]
    ]

    assert (await notify(stack, "paypal", *fake.sign(approved)))[0] == 200

    assert await eventually(until_status(http, stack, waiting["id"], "paid")) is not None
    assert approved["id"] in await received_event_ids(stack, waiting["id"])
    assert len(payments_of(fake, waiting["id"])["captures"]) == 1


async def test_approval_never_given_cancels(stack, http, fake, unique):
    waiting = await awaiting_customer(http, stack, payment(unique), unique)

    gave_up = await eventually(
        until_status(http, stack, waiting["id"], "cancelled"), timeout=ACTION_TIMEOUT_SECONDS + 15
    )

    assert gave_up is not None and gave_up["failure"]["code"] == "action_timeout"
    order = the_order(fake, waiting["id"])
    assert order["status"] == "PAYER_ACTION_REQUIRED" and "payments" not in order["purchase_units"][0]
    assert order["purchase_units"][0]["custom_id"] == f"{waiting['id']}:cancelled"  # marked at PayPal

    # The payer approves too late; a later lookup (reconciliation's) must not capture it.
    await approve(waiting["next_action"]["url"])
    gateway = PayPalGateway(PayPalSettings.model_validate(fake.gateway_section()))
    try:
        looked = await gateway.lookup(
            LookupCall(
                gateway="paypal",
                payment_id=waiting["id"],
                provider_payment_id=order["id"],
                amount=Amount(minor=4999, currency="USD"),
            )
        )
    finally:
        await gateway.aclose()
    assert looked.status is GatewayPaymentStatus.CANCELLED
    assert "payments" not in the_order(fake, waiting["id"])["purchase_units"][0]


async def test_manual_partial_capture(stack, http, fake, unique):
    waiting = await awaiting_customer(http, stack, payment(unique, capture_method="manual"), unique)
    await approved_and_back(http, stack, unique, waiting)
    assert await eventually(until_status(http, stack, waiting["id"], "authorized")) is not None
    assert payments_of(fake, waiting["id"])["authorizations"][0]["status"] == "CREATED"

    captured = await post(
        http, stack, f"/v1/payments/{waiting['id']}/capture", {"amount": "20.00"}, f"{unique}-c"
    )

    assert captured.status_code == 200, captured.text
    assert (captured.json()["status"], captured.json()["captured_amount"]) == ("paid", "20.00")
    payments = payments_of(fake, waiting["id"])
    assert payments["authorizations"][0]["status"] == "CAPTURED"  # the rest of the hold released
    assert [(c["amount"]["value"], c["final_capture"]) for c in payments["captures"]] == [("20.00", True)]
    assert (
        f"/v2/payments/authorizations/{payments['authorizations'][0]['id']}/capture",
        f"{workflow_id(waiting['id'])}:capture",
        False,
    ) in fake.requests


async def test_several_partial_refunds(stack, http, fake, unique):
    payment_id = await paid_payment(http, stack, unique)
    path = f"/v1/payments/{payment_id}/refunds"

    first = await post(http, stack, path, {"amount": "10.00"}, f"{unique}-r1")
    second = await post(http, stack, path, {"amount": "15.00"}, f"{unique}-r2")

    assert (first.status_code, second.status_code) == (201, 201), (first.text, second.text)
    refunds = payments_of(fake, payment_id)["refunds"]
    assert sorted((r["amount"]["value"], r["custom_id"]) for r in refunds) == [
        ("10.00", first.json()["id"]),
        ("15.00", second.json()["id"]),
    ]
    keys = {rid for p, rid, _ in fake.requests if p.endswith("/refund")}
    assert {f"{workflow_id(payment_id)}:refund:{r.json()['id']}" for r in (first, second)} <= keys
    view = await eventually(until_status(http, stack, payment_id, "partially_refunded"))
    assert view is not None and view["refunded_amount"] == "25.00"


async def test_a_dropped_capture_answer_still_charges_once(stack, http, fake, unique):
    waiting = await awaiting_customer(http, stack, payment(unique), unique)
    fake.faults.drop_next(match=f"/v2/checkout/orders/{waiting['provider_payment_id']}/capture")

    await approved_and_back(http, stack, unique, waiting)

    assert await eventually(until_status(http, stack, waiting["id"], "paid")) is not None
    assert len(payments_of(fake, waiting["id"])["captures"]) == 1
    finishing = [
        replayed
        for path, _, replayed in fake.requests
        if path == f"/v2/checkout/orders/{waiting['provider_payment_id']}/capture"
    ]
    # The answer was lost; the retried lookup found the order captured (or repeated the request
    # under the same PayPal-Request-Id and heard the first capture's answer): one real capture.
    assert [replayed for replayed in finishing if not replayed] == [False]


async def test_every_webhook_type_is_verified_and_applied(stack, http, fake, unique):
    payment_id = await paid_payment(http, stack, unique)
    order = the_order(fake, payment_id)
    capture = order["purchase_units"][0]["payments"]["captures"][0]
    refund = {
        "id": "RFAKEOUTSIDE0001",
        "status": "COMPLETED",
        "amount": {"currency_code": "USD", "value": "5.00"},
        "invoice_id": payment_id,
    }
    dispute = {
        "dispute_id": f"PP-D-{unique}",
        "reason": "MERCHANDISE_OR_SERVICE_NOT_RECEIVED",
        "status": "OPEN",
        "dispute_amount": {"currency_code": "USD", "value": "49.99"},
        "disputed_transactions": [{"seller_transaction_id": capture["id"], "invoice_number": payment_id}],
    }
    made = [
        fake.events_of("CHECKOUT.ORDER.APPROVED")[-1],
        *[e for e in fake.events_of("PAYMENT.CAPTURE.COMPLETED") if e["resource"]["custom_id"] == payment_id],
        fake.event("PAYMENT.CAPTURE.PENDING", {**capture, "status": "PENDING"}, "capture"),
        fake.event("PAYMENT.CAPTURE.DENIED", {**capture, "status": "DECLINED"}, "capture"),
        fake.event("PAYMENT.AUTHORIZATION.VOIDED", {**capture, "status": "VOIDED"}, "authorization"),
        fake.event("PAYMENT.CAPTURE.REFUNDED", refund, "refund"),
        fake.event("PAYMENT.CAPTURE.REVERSED", {**refund, "id": "RFAKEREVERSAL01"}, "refund"),
        fake.event("CUSTOMER.DISPUTE.CREATED", dispute, "dispute"),
        fake.event(
            "CUSTOMER.DISPUTE.RESOLVED",
            {**dispute, "status": "RESOLVED", "dispute_outcome": {"outcome_code": "RESOLVED_SELLER_FAVOUR"}},
            "dispute",
        ),
    ]

    for event in made:
        assert (await notify(stack, "paypal", *fake.sign(event)))[0] == 200, event["event_type"]

    async def all_applied() -> bool | None:
        ids = set(await received_event_ids(stack, payment_id))
        wanted = {e["id"] for e in made if e["event_type"] != "CHECKOUT.ORDER.APPROVED"}
        return True if wanted <= ids else None

    assert await eventually(all_applied) is not None
    view = (await http.get(f"/v1/payments/{payment_id}", headers=stack.headers())).json()
    # Captured and paid stays paid (a late denial or void changes nothing); the refund and the
    # reversal made at PayPal are recorded; the dispute was opened, then won.
    assert view["captured_amount"] == "49.99" and view["refunded_amount"] == "10.00"
    assert [(d["id"], d["status"], d["reason"]) for d in view["disputes"]] == [
        (f"PP-D-{unique}", "won", "MERCHANDISE_OR_SERVICE_NOT_RECEIVED")
    ]


async def test_forged_tampered_and_stale_webhooks_are_refused(stack, http, fake, unique):
    payment_id = await paid_payment(http, stack, unique)
    [completed] = [
        e for e in fake.events_of("PAYMENT.CAPTURE.COMPLETED") if e["resource"]["custom_id"] == payment_id
    ]
    headers, body = fake.sign(completed)

    forged = {**headers, "PAYPAL-TRANSMISSION-SIG": base64.b64encode(b"\x01" * 256).decode()}
    tampered = json.loads(body)
    tampered["resource"]["amount"]["value"] = "0.01"
    elsewhere = {**headers, "PAYPAL-CERT-URL": "https://attacker.example/cert.pem"}
    stale_headers, stale_body = fake.sign(completed, timestamp=int(time.time()) - 3600)

    assert (await notify(stack, "paypal", forged, body))[0] == 400
    assert (await notify(stack, "paypal", headers, json.dumps(tampered, separators=(",", ":")).encode()))[
        0
    ] == 400
    assert (await notify(stack, "paypal", elsewhere, body))[0] == 400
    assert (await notify(stack, "paypal", stale_headers, stale_body))[0] == 400
    assert (await notify(stack, "paypal", headers, body))[0] == 200  # as PayPal sent it
