"""Braintree end to end: real HTTP into the real API, a real worker running PaymentWorkflow on the
Temporal dev server, the SQL store, and the Braintree adapter (the official SDK, in its thread
pool) talking to the fake Braintree gateway; Braintree's signed notifications posted to the real
receiver as Braintree posts them (a form with `bt_signature` and `bt_payload`).

One stack and one fake serve the whole module (each test has its own ids).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
import pytest_asyncio

from activities.gateways.braintree.fake import FakeBraintree
from tests.activities.gateways.helpers import serving
from tests.e2e.helpers import (
    eventually,
    gateway_stack,
    notify,
    payment_view,
    post,
    received_event_ids,
    until_status,
)
from tests.stack import Stack

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

THREE_DS_FROM = "500.00"  # payments from this amount ask for 3-D Secure

fake = serving(FakeBraintree, scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stack(temporal_env, pg_url, fake: FakeBraintree) -> AsyncIterator[Stack]:
    async with gateway_stack(
        temporal_env.client,
        "braintree",
        fake.gateway_section(),
        db_url=pg_url,
        tds_threshold=THREE_DS_FROM,
    ) as running:
        yield running


def payment(unique: str, nonce: str = "fake-valid-nonce", **fields: Any) -> dict[str, Any]:
    return {
        "order_id": f"order-{unique}",
        "amount": "49.99",
        "currency": "USD",
        "gateway": "braintree",
        "payment_method": {"type": "card", "token": nonce},
        **fields,
    }


async def paid_payment(http, stack, unique: str, **fields: Any) -> dict[str, Any]:
    created = await post(http, stack, "/v1/payments", payment(unique, **fields), unique)
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "paid"
    return created.json()


async def test_sale(stack, http, fake, unique):
    paid = await paid_payment(http, stack, unique)

    assert (paid["gateway"], paid["captured_amount"]) == ("braintree", "49.99")
    [sale] = fake.sales_for(paid["id"])
    assert paid["provider_payment_id"] == sale.id
    assert (sale.status, sale.amount, sale.currency) == ("submitted_for_settlement", Decimal("49.99"), "USD")


async def test_decline_charges_nothing(stack, http, fake, unique):
    created = await post(
        http, stack, "/v1/payments", payment(unique, "fake-processor-declined-visa-nonce"), unique
    )

    assert created.status_code == 402, created.text
    failed = created.json()
    assert (failed["status"], failed["failure"]["code"], failed["failure"]["decline_code"]) == (
        "failed",
        "card_declined",
        "2000",
    )
    assert [s.status for s in fake.sales_for(failed["id"])] == ["processor_declined"]


async def test_manual_partial_capture(stack, http, fake, unique):
    created = await post(http, stack, "/v1/payments", payment(unique, capture_method="manual"), unique)
    assert (created.status_code, created.json()["status"]) == (201, "authorized"), created.text
    [sale] = fake.sales_for(created.json()["id"])
    assert (sale.status, sale.amount) == ("authorized", Decimal("49.99"))

    captured = await post(
        http, stack, f"/v1/payments/{created.json()['id']}/capture", {"amount": "20.00"}, f"{unique}-c"
    )

    assert captured.status_code == 200, captured.text
    assert (captured.json()["status"], captured.json()["captured_amount"]) == ("paid", "20.00")
    assert (sale.status, sale.amount) == ("submitted_for_settlement", Decimal("20.00"))


async def test_void(stack, http, fake, unique):
    created = await post(http, stack, "/v1/payments", payment(unique, capture_method="manual"), unique)
    assert created.json()["status"] == "authorized", created.text

    cancelled = await post(http, stack, f"/v1/payments/{created.json()['id']}/cancel", None, f"{unique}-v")

    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert [s.status for s in fake.sales_for(created.json()["id"])] == ["voided"]


async def test_several_partial_refunds(stack, http, fake, unique):
    paid = await paid_payment(http, stack, unique)
    path = f"/v1/payments/{paid['id']}/refunds"

    first = await post(http, stack, path, {"amount": "10.00"}, f"{unique}-r1")
    second = await post(http, stack, path, {"amount": "15.00"}, f"{unique}-r2")
    too_much = await post(http, stack, path, {"amount": "30.00"}, f"{unique}-r3")

    assert (first.status_code, second.status_code) == (201, 201), (first.text, second.text)
    assert [first.json()["status"], second.json()["status"]] == ["succeeded", "succeeded"]
    assert too_much.status_code in (409, 422), too_much.text
    [sale] = fake.sales_for(paid["id"])
    refunds = fake.refunds_of(sale)
    assert [(r.amount, r.order_id) for r in refunds] == [
        (Decimal("10.00"), f"{paid['id']}/refund/{first.json()['id']}"),
        (Decimal("15.00"), f"{paid['id']}/refund/{second.json()['id']}"),
    ]
    view = await eventually(until_status(http, stack, paid["id"], "partially_refunded"))
    assert view is not None and view["refunded_amount"] == "25.00"


async def test_lost_create_answer_is_retried_without_a_second_charge(stack, http, fake, unique):
    creates_before = fake.requests.count("create_transaction")
    fake.faults.drop_next(match="create_transaction")  # Braintree makes the sale; the answer is lost

    paid = await paid_payment(http, stack, unique)

    # The activity's retry searched for our order id and found the sale instead of sending it again.
    assert fake.requests.count("create_transaction") - creates_before == 1
    assert [s.id for s in fake.sales_for(paid["id"])] == [paid["provider_payment_id"]]


@pytest.mark.parametrize(
    ("nonce", "outcome"),
    [
        ("fake-three-d-secure-visa-failed-authentication-nonce", "failed"),
        ("fake-valid-nonce", "failed"),  # no 3-D Secure result at all
        ("fake-three-d-secure-visa-full-authentication-nonce", "paid"),
    ],
)
async def test_three_ds_where_required(stack, http, fake, unique, nonce, outcome):
    created = await post(http, stack, "/v1/payments", payment(unique, nonce, amount="900.00"), unique)

    assert created.json()["status"] == outcome, created.text
    [sale] = fake.sales_for(created.json()["id"])
    if outcome == "failed":
        assert created.json()["failure"]["code"] == "authentication_failed"
        assert (sale.status, sale.gateway_rejection_reason) == ("gateway_rejected", "three_d_secure")
    else:
        assert sale.status == "submitted_for_settlement"


async def delivered(stack: Stack, delivery: tuple[dict[str, str], bytes]) -> int:
    status, _ = await notify(stack, "braintree", *delivery)
    return status


async def test_transaction_settled_and_disbursed_are_recorded(stack, http, fake, unique):
    paid = await paid_payment(http, stack, unique)
    fake.settle(paid["provider_payment_id"])

    settled = fake.emitted("transaction_settled", paid["provider_payment_id"])
    disbursed = fake.notification(
        "transaction_disbursed", {"transaction": fake.transactions[paid["provider_payment_id"]].to_xml()}
    )

    assert await delivered(stack, settled) == 200
    assert await delivered(stack, disbursed) == 200
    assert await delivered(stack, settled) == 200  # again: taken once
    ids = await eventually(lambda: _events(stack, paid["id"], 2))
    assert ids is not None and [i.split(":")[0] for i in ids] == [
        "transaction_settled",
        "transaction_disbursed",
    ]
    assert (await payment_view(http, stack, paid["id"]))["status"] == "paid"


async def _events(stack: Stack, payment_id: str, count: int) -> list[str] | None:
    ids = await received_event_ids(stack, payment_id)
    return ids if len(ids) >= count else None


async def test_settlement_declined_is_recorded(stack, http, fake, unique):
    """Braintree declines the settlement of a sale it had accepted (ACH, some PayPal): the event
    reaches the payment's workflow, which records it; a failure after success does not unpay a
    payment there (PaymentWorkflow's rule), so the operators see it in the payment's events."""
    paid = await paid_payment(http, stack, unique)
    fake.decline_settlement(paid["provider_payment_id"])

    declined = fake.emitted("transaction_settlement_declined", paid["provider_payment_id"])
    assert await delivered(stack, declined) == 200

    ids = await eventually(lambda: _events(stack, paid["id"], 1))
    assert ids is not None and ids[0].startswith("transaction_settlement_declined:")


async def test_dispute_opened_then_won_then_lost(stack, http, fake, unique):
    paid = await paid_payment(http, stack, unique)
    [sale] = fake.sales_for(paid["id"])

    assert await delivered(stack, fake.dispute("dispute_opened", sale, dispute_id=f"dp_{unique}")) == 200
    view = await eventually(until_status(http, stack, paid["id"], "disputed"))
    assert view is not None and [(d["status"], d["reason"]) for d in view["disputes"]] == [
        ("needs_response", "fraud")
    ]

    assert await delivered(stack, fake.dispute("dispute_won", sale, dispute_id=f"dp_{unique}")) == 200
    view = await eventually(until_status(http, stack, paid["id"], "paid"))
    assert view is not None and [d["status"] for d in view["disputes"]] == ["won"]

    assert await delivered(stack, fake.dispute("dispute_lost", sale, dispute_id=f"dp_{unique}")) == 200
    view = await eventually(until_status(http, stack, paid["id"], "disputed"))
    assert view is not None and [d["status"] for d in view["disputes"]] == ["lost"]


async def test_refund_failed(stack, http, fake, unique):
    paid = await paid_payment(http, stack, unique)
    refund = await post(http, stack, f"/v1/payments/{paid['id']}/refunds", {"amount": "5.00"}, f"{unique}-r")
    assert refund.json()["status"] == "succeeded", refund.text
    [sale] = fake.sales_for(paid["id"])
    [at_braintree] = fake.refunds_of(sale)

    assert await delivered(stack, fake.refund_failed(at_braintree)) == 200

    async def refund_failed() -> dict[str, Any] | None:
        view = await payment_view(http, stack, paid["id"])
        return view if [r["status"] for r in view["refunds"]] == ["failed"] else None

    view = await eventually(refund_failed)
    assert view is not None and view["status"] == "paid"


async def test_check_notification_is_acknowledged(stack, fake):
    assert await delivered(stack, fake.notification("check", {"check": True})) == 200


async def test_forged_and_tampered_webhooks_are_refused(stack, http, fake, unique):
    paid = await paid_payment(http, stack, unique)
    [sale] = fake.sales_for(paid["id"])
    forger = FakeBraintree(private_key="not-the-merchants-private-key")
    forged = forger.dispute("dispute_opened", sale)
    genuine = fake.dispute("dispute_opened", sale)
    headers, body = genuine
    tampered = (headers, body.replace(b"bt_payload=", b"bt_payload=QQ"))
    other_key = FakeBraintree(public_key="someone_else", private_key=fake.private_key).dispute(
        "dispute_opened", sale
    )

    for delivery in (forged, tampered, other_key, (headers, b"bt_payload=x")):
        assert await delivered(stack, delivery) == 400

    assert (await payment_view(http, stack, paid["id"]))["status"] == "paid"
    assert await received_event_ids(stack, paid["id"]) == []


async def test_the_endpoint_check_is_answered(stack, fake):
    """Braintree's legacy check of the URL: `GET ?bt_challenge=<hex>` answered `public_key|HMAC`."""
    challenge = "20f9f8ed05f77439fe955c977e4c8a53"
    async with httpx.AsyncClient() as client:
        answered = await client.get(f"{stack.webhook_url}/braintree", params={"bt_challenge": challenge})
        malformed = await client.get(f"{stack.webhook_url}/braintree", params={"bt_challenge": "<x>"})
        none = await client.get(f"{stack.webhook_url}/braintree")
        mock = await client.get(f"{stack.webhook_url}/mock", params={"bt_challenge": challenge})

    key = hashlib.sha1(fake.private_key.encode()).digest()
    expected = f"{fake.public_key}|{hmac.new(key, challenge.encode(), hashlib.sha1).hexdigest()}"
    assert (answered.status_code, answered.text) == (200, expected)
    assert (malformed.status_code, none.status_code, mock.status_code) == (400, 405, 405)
