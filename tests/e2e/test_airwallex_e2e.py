"""Airwallex end to end: real HTTP into the real API, a real worker running PaymentWorkflow on the
Temporal dev server, the PostgreSQL store, and the Airwallex adapter talking REST to the fake
Airwallex server; its signed webhooks are delivered to the real receiver as Airwallex posts them.

One stack and one fake serve the whole module (each test has its own ids), so it stays in seconds.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest_asyncio

from activities.gateways.airwallex.fake import CARD_3DS, CARD_DECLINED, CARD_SUCCESS, FakeAirwallex
from activities.gateways.airwallex.transform import request_id
from tests.activities.gateways.helpers import serving
from tests.e2e.helpers import (
    Check,
    awaiting_customer,
    eventually,
    gateway_stack,
    notify,
    payment_view,
    post,
    received_event_ids,
    until_status,
)
from tests.stack import Stack
from workflows.client import workflow_id

ACTION_TIMEOUT_SECONDS = 3  # how long a customer gets for 3-D Secure here

fake = serving(FakeAirwallex, scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stack(temporal_env, pg_url, fake: FakeAirwallex) -> AsyncIterator[Stack]:
    async with gateway_stack(
        temporal_env.client,
        "airwallex",
        fake.gateway_section(),
        db_url=pg_url,  # the production store
        action_timeout_seconds=ACTION_TIMEOUT_SECONDS,
    ) as running:
        yield running


def payment(unique: str, token: str = CARD_SUCCESS, **fields: Any) -> dict[str, Any]:
    return {
        "order_id": f"order-{unique}",
        "amount": "49.99",
        "currency": "USD",
        "gateway": "airwallex",
        "payment_method": {"type": "card", "token": token},
        **fields,
    }


async def deliver(stack: Stack, fake: FakeAirwallex, event: dict[str, Any], **signing: Any) -> int:
    status, _ = await notify(stack, "airwallex", *fake.delivery(event, **signing))
    return status


async def test_card_success(stack, http, fake, unique):
    created = await post(http, stack, "/v1/payments", payment(unique), unique)

    assert created.status_code == 201, created.text
    paid = created.json()
    assert (paid["status"], paid["gateway"], paid["captured_amount"]) == ("paid", "airwallex", "49.99")
    [intent] = fake.intents_for(paid["id"])
    assert paid["provider_payment_id"] == intent.id
    assert (intent.amount, intent.captured_amount, intent.status) == (
        Decimal("49.99"),
        Decimal("49.99"),
        "SUCCEEDED",
    )
    assert intent.metadata["durapay_order_id"] == f"order-{unique}"
    # One request_id per call, derived from the workflow's idempotency key.
    [create] = [r for r in fake.posts("create") if r.body["merchant_order_id"] == paid["id"]]
    [confirm] = [r for r in fake.posts("confirm") if r.path.endswith(f"/{intent.id}/confirm")]
    key = f"{workflow_id(paid['id'])}:authorize"
    assert (create.body["request_id"], confirm.body["request_id"]) == (
        request_id(key, "create"),
        request_id(key, "confirm"),
    )
    assert confirm.body["payment_method_options"] == {"card": {"auto_capture": True}}


async def test_decline(stack, http, fake, unique):
    created = await post(http, stack, "/v1/payments", payment(unique, CARD_DECLINED), unique)

    assert created.status_code == 402, created.text
    failed = created.json()
    assert failed["status"] == "failed"
    assert (failed["failure"]["code"], failed["failure"]["decline_code"]) == (
        "card_declined",
        "issuer_declined",
    )
    [intent] = fake.intents_for(failed["id"])
    assert intent.status == "REQUIRES_PAYMENT_METHOD" and intent.captured_amount == 0
    assert len([r for r in fake.posts("confirm") if r.path.endswith(f"/{intent.id}/confirm")]) == 1


async def test_three_ds_completed(stack, http, fake, unique):
    body = payment(unique, CARD_3DS, return_url="https://shop.example/return")
    waiting = await awaiting_customer(http, stack, body, unique)
    assert waiting["status"] == "authorizing"
    assert waiting["next_action"]["type"] == "redirect_to_url"

    async with httpx.AsyncClient() as browser:
        challenge = await browser.get(waiting["next_action"]["url"])
    assert challenge.status_code == 302
    back = {"payment_intent_id": httpx.URL(challenge.headers["location"]).params["payment_intent_id"]}
    completed = await post(
        http, stack, f"/v1/payments/{waiting['id']}/actions/complete", {"data": back}, f"{unique}-back"
    )

    assert completed.status_code == 200, completed.text
    view = await eventually(until_status(http, stack, waiting["id"], "paid"))
    assert view is not None and view["captured_amount"] == "49.99"
    [intent] = fake.intents_for(waiting["id"])
    assert intent.status == "SUCCEEDED"


async def test_three_ds_never_completed_is_cancelled_at_airwallex(stack, http, fake, unique):
    waiting = await awaiting_customer(http, stack, payment(unique, CARD_3DS), unique)

    gave_up = await eventually(
        until_status(http, stack, waiting["id"], "cancelled"), timeout=ACTION_TIMEOUT_SECONDS + 15
    )

    assert gave_up is not None
    assert gave_up["failure"]["code"] == "action_timeout"
    [intent] = fake.intents_for(waiting["id"])
    # Nothing left open at the provider: the intent was cancelled, so the customer can no longer pay.
    assert (intent.status, intent.cancellation_reason) == ("CANCELLED", "Abandoned by customer")
    async with httpx.AsyncClient() as browser:
        assert (await browser.get(waiting["next_action"]["url"])).status_code == 400
    assert intent.captured_amount == 0


async def test_manual_partial_capture(stack, http, fake, unique):
    created = await post(http, stack, "/v1/payments", payment(unique, capture_method="manual"), unique)
    assert (created.status_code, created.json()["status"]) == (201, "authorized"), created.text
    [intent] = fake.intents_for(created.json()["id"])
    assert intent.status == "REQUIRES_CAPTURE"

    captured = await post(
        http, stack, f"/v1/payments/{created.json()['id']}/capture", {"amount": "20.00"}, f"{unique}-c1"
    )

    assert captured.status_code == 200, captured.text
    assert (captured.json()["status"], captured.json()["captured_amount"]) == ("paid", "20.00")
    assert (intent.status, intent.amount, intent.captured_amount) == (
        "SUCCEEDED",
        Decimal("49.99"),
        Decimal("20"),
    )
    [capture] = [r for r in fake.posts("capture") if r.path.endswith(f"/{intent.id}/capture")]
    assert capture.body == {
        "request_id": request_id(f"{workflow_id(created.json()['id'])}:capture", "capture"),
        "amount": Decimal("20.00"),
    }


async def test_partial_refunds(stack, http, fake, unique):
    created = await post(http, stack, "/v1/payments", payment(unique), unique)
    payment_id = created.json()["id"]
    path = f"/v1/payments/{payment_id}/refunds"

    first = await post(
        http, stack, path, {"amount": "10.00", "reason": "requested_by_customer"}, f"{unique}-r1"
    )
    second = await post(http, stack, path, {"amount": "15.00", "reason": "damaged"}, f"{unique}-r2")

    assert (first.status_code, second.status_code) == (201, 201), (first.text, second.text)
    assert [first.json()["status"], second.json()["status"]] == ["succeeded", "succeeded"]
    at_airwallex = sorted(fake.refunds_for(payment_id), key=lambda r: r.amount)
    assert [(r.amount, r.metadata["durapay_refund_id"]) for r in at_airwallex] == [
        (Decimal("10.00"), first.json()["id"]),
        (Decimal("15.00"), second.json()["id"]),
    ]
    # Each refund has its own request_id (a digest where the key is longer than Airwallex allows).
    request_ids = {r.request_id for r in at_airwallex}
    assert len(request_ids) == 2 and all(len(r) <= 64 for r in request_ids)
    view = await eventually(until_status(http, stack, payment_id, "partially_refunded"))
    assert view is not None and view["refunded_amount"] == "25.00"


async def test_a_dropped_response_after_the_charge_charges_once(stack, http, fake, unique):
    fake.faults.drop_next(match="confirm")

    created = await post(http, stack, "/v1/payments", payment(unique), unique)

    assert created.status_code == 201, created.text
    assert created.json()["status"] == "paid"
    payment_id = created.json()["id"]
    [intent] = fake.intents_for(payment_id)
    confirms = [r for r in fake.posts("confirm") if r.path.endswith(f"/{intent.id}/confirm")]
    assert [r.replayed for r in confirms] == [False, True]  # the retry heard Airwallex's first answer
    assert intent.captured_amount == Decimal("49.99")
    assert len(fake.events_of("payment_intent.succeeded", payment_id)) == 1  # charged once


async def test_payment_webhooks_are_verified_and_applied(stack, http, fake, unique):
    paid = (await post(http, stack, "/v1/payments", payment(unique), unique)).json()
    held = (
        await post(http, stack, "/v1/payments", payment(f"{unique}h", capture_method="manual"), f"{unique}h")
    ).json()
    declined = (
        await post(http, stack, "/v1/payments", payment(f"{unique}d", CARD_DECLINED), f"{unique}d")
    ).json()
    waiting = await awaiting_customer(http, stack, payment(f"{unique}w", CARD_3DS), f"{unique}w")
    voided = await post(http, stack, f"/v1/payments/{held['id']}/cancel", {}, f"{unique}-void")
    assert voided.status_code == 200, voided.text

    deliveries = {
        paid["id"]: ["payment_intent.succeeded"],
        held["id"]: ["payment_intent.requires_capture", "payment_intent.cancelled"],
        declined["id"]: ["payment_attempt.authorization_failed"],
        waiting["id"]: ["payment_intent.requires_customer_action"],
    }
    for payment_id, names in deliveries.items():
        for name in names:
            [event] = fake.events_of(name, payment_id)
            assert await deliver(stack, fake, event) == 200
            assert await eventually(recorded(stack, payment_id, event["id"])), (name, payment_id)
    # Applied without changing what the API already decided.
    assert (await payment_view(http, stack, paid["id"]))["status"] == "paid"
    assert (await payment_view(http, stack, held["id"]))["status"] == "cancelled"
    assert (await payment_view(http, stack, declined["id"]))["status"] == "failed"


async def test_refund_webhooks_settle_a_pending_refund_or_fail_it(stack, http, fake, unique):
    payment_id = (await post(http, stack, "/v1/payments", payment(unique), unique)).json()["id"]
    path = f"/v1/payments/{payment_id}/refunds"
    fake.refund_outcome = "RECEIVED"
    try:
        settled = await post(http, stack, path, {"amount": "5.00"}, f"{unique}-r1")
        failed = await post(http, stack, path, {"amount": "7.00"}, f"{unique}-r2")
    finally:
        fake.refund_outcome = "ACCEPTED"
    assert [settled.json()["status"], failed.json()["status"]] == ["pending", "pending"]
    by_ours = {r.metadata["durapay_refund_id"]: r for r in fake.refunds_for(payment_id)}

    fake.settle_refund(by_ours[settled.json()["id"]].id, "SETTLED")
    fake.settle_refund(by_ours[failed.json()["id"]].id, "FAILED")
    for name in ("refund.settled", "refund.failed"):
        [event] = fake.events_of(name, payment_id)
        assert await deliver(stack, fake, event) == 200

    async def refunds_decided() -> dict[str, Any] | None:
        view = await payment_view(http, stack, payment_id)
        statuses = {r["id"]: r["status"] for r in view["refunds"]}
        return view if "pending" not in statuses.values() else None

    view = await eventually(refunds_decided)
    assert view is not None
    assert {r["id"]: r["status"] for r in view["refunds"]} == {
        settled.json()["id"]: "succeeded",
        failed.json()["id"]: "failed",
    }
    assert view["refunded_amount"] == "5.00"


async def test_dispute_webhooks(stack, http, fake, unique):
    paid = (await post(http, stack, "/v1/payments", payment(unique), unique)).json()

    dispute = fake.open_dispute(paid["provider_payment_id"], reason="fraudulent")
    assert await deliver(stack, fake, dispute) == 200

    view = await eventually(until_status(http, stack, paid["id"], "disputed"))
    assert view is not None
    [opened] = view["disputes"]
    assert opened["reason"] == "fraudulent"
    closed = fake.close_dispute(dispute["data"]["object"], "WON")
    assert await deliver(stack, fake, closed) == 200
    assert await eventually(recorded(stack, paid["id"], closed["id"]))


def recorded(stack: Stack, payment_id: str, event_id: str) -> Check:
    """A check for `eventually`: True once the workflow applied the webhook `event_id`."""

    async def check() -> bool | None:
        return True if event_id in await received_event_ids(stack, payment_id) else None

    return check


async def test_forged_tampered_and_stale_webhooks_are_refused(stack, http, fake, unique):
    paid = (await post(http, stack, "/v1/payments", payment(unique), unique)).json()
    [event] = fake.events_of("payment_intent.succeeded", paid["id"])

    forged = await deliver(stack, fake, event, secret="whsec_not_the_endpoint_secret")
    headers, body = fake.delivery(event)
    tampered, _ = await notify(stack, "airwallex", headers, body.replace(b"49.99", b"0.01"))
    stale = await deliver(stack, fake, event, timestamp_ms=int((time.time() - 10 * 60) * 1000))

    assert (forged, tampered, stale) == (400, 400, 400)
    assert event["id"] not in await received_event_ids(stack, paid["id"])
    assert await deliver(stack, fake, event) == 200  # the genuine delivery, as sent
    assert await eventually(recorded(stack, paid["id"], event["id"]))
