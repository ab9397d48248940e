"""The fake Stripe server itself: the parts of Stripe's wire protocol the adapter does not exercise on
its own (separate confirm, Basic auth, signature format) checked with the SDK and plain HTTP."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
import stripe

from tests.activities.gateways.stripe.stripe_fixtures import fake_stripe, stripe_server

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")


@pytest_asyncio.fixture
async def sdk(fake_stripe) -> AsyncIterator[stripe.StripeClient]:
    http_client = stripe.HTTPXClient()
    yield stripe.StripeClient(
        fake_stripe.secret_key,
        base_addresses={"api": fake_stripe.url},
        max_network_retries=0,
        http_client=http_client,
    )
    await http_client.close_async()


async def test_create_then_confirm_in_two_calls(sdk, fake_stripe):
    created = await sdk.v1.payment_intents.create_async(
        {"amount": 1500, "currency": "eur", "payment_method": "pm_card_visa", "capture_method": "manual"},
        {"idempotency_key": "k-create"},
    )
    assert created.status == "requires_confirmation"

    confirmed = await sdk.v1.payment_intents.confirm_async(
        created.id, options={"idempotency_key": "k-confirm"}
    )

    assert (confirmed.status, confirmed.amount_capturable) == ("requires_capture", 1500)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        await sdk.v1.payment_intents.confirm_async(created.id, options={"idempotency_key": "k-confirm-2"})
    assert caught.value.code == "payment_intent_unexpected_state"


async def test_basic_auth_works_and_a_wrong_key_is_401(fake_stripe):
    basic = base64.b64encode(f"{fake_stripe.secret_key}:".encode()).decode()
    async with httpx.AsyncClient(base_url=fake_stripe.url) as client:
        ok = await client.get("/v1/refunds", headers={"Authorization": f"Basic {basic}"})
        refused = await client.get("/v1/refunds", headers={"Authorization": "Bearer sk_test_wrong"})

    assert ok.status_code == 200 and ok.json()["object"] == "list"
    assert refused.status_code == 401
    assert refused.json()["error"]["type"] == "invalid_request_error"
    assert "sk_test_wrong" not in refused.text


async def test_form_encoding_with_brackets_is_read_like_stripe(fake_stripe):
    body = "amount=700&currency=usd&metadata[a]=1&metadata[b]=2&payment_method_types[0]=card"
    async with httpx.AsyncClient(base_url=fake_stripe.url) as client:
        response = await client.post(
            "/v1/payment_intents",
            content=body,
            headers={
                "Authorization": f"Bearer {fake_stripe.secret_key}",
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )

    assert response.status_code == 200, response.text
    assert response.json()["metadata"] == {"a": "1", "b": "2"}
    assert fake_stripe.requests[-1].params["payment_method_types"] == ["card"]


def test_signed_events_verify_with_the_sdk(fake_stripe):
    event = fake_stripe.build_event("payment_intent.succeeded", {"id": "pi_1", "object": "payment_intent"})
    headers, body = fake_stripe.encode_event(event)

    verified = stripe.Webhook.construct_event(
        body, headers["Stripe-Signature"], fake_stripe.webhook_secrets[0]
    )

    assert verified.id == event["id"]
    assert json.loads(body) == event


@pytest.mark.parametrize(
    "metadata, complaint",
    [
        ({f"k{i}": "v" for i in range(51)}, "50 keys"),
        ({"k" * 41: "v"}, "40 characters"),
        ({"k": "v" * 501}, "500 characters"),
    ],
    ids=["51 keys", "41-char key", "501-char value"],
)
async def test_metadata_over_stripes_limits_is_refused_like_stripe(sdk, fake_stripe, metadata, complaint):
    """Issue #17 item 2: Stripe answers 400 to metadata over its limits; so does the fake."""
    with pytest.raises(stripe.InvalidRequestError) as caught:
        await sdk.v1.payment_intents.create_async(
            {"amount": 1500, "currency": "eur", "payment_method": "pm_card_visa", "metadata": metadata},
            {"idempotency_key": "k-metadata"},
        )
    assert caught.value.http_status == 400 and caught.value.param == "metadata"
    assert complaint in str(caught.value.user_message)
    assert fake_stripe.payment_intents == {}
