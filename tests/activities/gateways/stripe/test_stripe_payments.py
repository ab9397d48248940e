"""The Stripe adapter's payment flows, through the real SDK against the fake Stripe server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from activities.gateways.base import GatewayInvalidRequest, GatewayTransientError
from tests.activities.gateways.helpers import STRIPE, pid
from tests.activities.gateways.stripe.stripe_fixtures import (
    fake_stripe,
    stripe_gateway,
    stripe_server,
)
from workflows.domain import BankTransferMethod, NextActionType
from workflows.gateway_io import GatewayPaymentStatus
from workflows.money import Amount

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")


async def test_sale_with_a_payment_method_succeeds_with_our_ids_in_metadata(
    stripe_gateway, fake_stripe, unique
):
    call = STRIPE.authorize(pid(unique), metadata={"cart": "c-1"})

    result = await stripe_gateway.authorize(call)

    assert result.status is GatewayPaymentStatus.SUCCEEDED
    assert result.captured_minor == result.authorized_minor == 4999
    intent = fake_stripe.payment_intents[result.provider_payment_id]
    assert intent["metadata"] == {
        "cart": "c-1",
        "durapay_payment_id": call.payment_id,
        "durapay_order_id": call.order_id,
    }
    assert intent["currency"] == "usd" and intent["amount"] == 4999
    assert intent["statement_descriptor_suffix"] == "ORDER"
    [request] = fake_stripe.posts()
    assert request.idempotency_key == call.idempotency_key
    assert request.params["confirm"] == "true" and request.params["capture_method"] == "automatic"
    assert "statement_descriptor" not in request.params  # cards take only the suffix
    assert [c["amount_captured"] for c in fake_stripe.charges_for(call.payment_id)] == [4999]
    assert result.provider_response["status"] == "succeeded"
    assert "client_secret" not in str(result.provider_response)


async def test_a_card_token_is_confirmed_through_payment_method_data(stripe_gateway, fake_stripe, unique):
    call = STRIPE.authorize(pid(unique), "tok_mastercard")

    result = await stripe_gateway.authorize(call)

    assert result.status is GatewayPaymentStatus.SUCCEEDED
    [request] = fake_stripe.posts()
    assert request.params["payment_method_data"] == {"type": "card", "card": {"token": "tok_mastercard"}}
    assert "payment_method" not in request.params
    method = fake_stripe.payment_methods[
        fake_stripe.payment_intents[result.provider_payment_id]["payment_method"]
    ]
    assert method["card"]["brand"] == "mastercard"


@pytest.mark.parametrize(
    ("token", "decline_code", "message"),
    [
        ("pm_card_chargeDeclined", "generic_decline", "Your card was declined."),
        (
            "pm_card_chargeDeclinedInsufficientFunds",
            "insufficient_funds",
            "Your card has insufficient funds.",
        ),
        ("tok_chargeDeclined", "generic_decline", "Your card was declined."),
    ],
)
async def test_a_decline_is_a_final_result_with_stripes_codes(
    stripe_gateway, fake_stripe, unique, token, decline_code, message
):
    call = STRIPE.authorize(pid(unique), token)

    result = await stripe_gateway.authorize(call)

    assert result.status is GatewayPaymentStatus.DECLINED
    assert result.failure is not None
    assert (result.failure.code, result.failure.decline_code, result.failure.message) == (
        "card_declined",
        decline_code,
        message,
    )
    assert result.provider_payment_id in fake_stripe.payment_intents
    assert fake_stripe.charges_for(call.payment_id) == []
    # The retried activity hears the same decline, and Stripe does not try the card again.
    again = await stripe_gateway.authorize(call)
    assert again == result
    assert (
        fake_stripe.requests[-1].replayed
        and len(fake_stripe.charges_for(call.payment_id, status="failed")) == 1
    )


async def test_manual_capture_authorizes_then_captures_part(stripe_gateway, fake_stripe, unique):
    call = STRIPE.authorize(pid(unique), capture=False)

    held = await stripe_gateway.authorize(call)
    assert held.status is GatewayPaymentStatus.AUTHORIZED
    assert held.authorized_minor == 4999 and held.captured_minor is None

    capture = STRIPE.capture(call.payment_id, 3000, provider_payment_id=held.provider_payment_id)
    captured = await stripe_gateway.capture(capture)

    assert captured.status is GatewayPaymentStatus.SUCCEEDED
    assert captured.captured_minor == 3000
    assert fake_stripe.posts()[-1].params == {"amount_to_capture": "3000"}
    assert fake_stripe.posts()[-1].idempotency_key == capture.idempotency_key
    assert [c["amount_captured"] for c in fake_stripe.charges_for(call.payment_id)] == [3000]
    # A retried capture replays Stripe's answer; nothing is captured twice.
    assert await stripe_gateway.capture(capture) == captured
    assert fake_stripe.requests[-1].replayed


async def test_full_capture_without_the_intent_id_finds_it_by_our_reference(
    stripe_gateway, fake_stripe, unique
):
    call = STRIPE.authorize(pid(unique), capture=False)
    held = await stripe_gateway.authorize(call)

    captured = await stripe_gateway.capture(STRIPE.capture(call.payment_id))

    assert captured.status is GatewayPaymentStatus.SUCCEEDED
    assert captured.provider_payment_id == held.provider_payment_id
    assert captured.captured_minor == 4999


async def test_three_ds_redirect_then_the_lookup_after_the_return_sees_success(
    stripe_gateway, fake_stripe, unique
):
    call = STRIPE.authorize(
        pid(unique), "pm_card_threeDSecure2Required", return_url="https://shop.example/return"
    )

    pending = await stripe_gateway.authorize(call)

    assert pending.status is GatewayPaymentStatus.REQUIRES_ACTION
    assert pending.next_action is not None
    assert pending.next_action.type is NextActionType.REDIRECT_TO_URL
    assert pending.next_action.url == fake_stripe.three_ds_url(pending.provider_payment_id)
    assert pending.next_action.data == {"return_url": "https://shop.example/return"}
    before = await stripe_gateway.lookup(
        STRIPE.lookup(call.payment_id, provider_payment_id=pending.provider_payment_id)
    )
    assert before.status is GatewayPaymentStatus.REQUIRES_ACTION

    async with httpx.AsyncClient() as browser:
        back = await browser.get(pending.next_action.url)
    assert back.status_code == 302
    assert back.headers["location"].startswith("https://shop.example/return?payment_intent=")

    # What the return carried is a hint only; the lookup asks Stripe.
    after = await stripe_gateway.lookup(
        STRIPE.lookup(
            call.payment_id,
            provider_payment_id=pending.provider_payment_id,
            action_data={"redirect_status": "failed"},
        )
    )
    assert after.status is GatewayPaymentStatus.SUCCEEDED
    assert after.captured_minor == 4999
    assert len(fake_stripe.charges_for(call.payment_id)) == 1


async def test_three_ds_without_return_url_asks_for_stripe_js(stripe_gateway, fake_stripe, unique):
    call = STRIPE.authorize(pid(unique), "pm_card_authenticationRequired")

    pending = await stripe_gateway.authorize(call)

    assert pending.status is GatewayPaymentStatus.REQUIRES_ACTION
    action = pending.next_action
    assert action is not None and action.type is NextActionType.USE_SDK
    intent = fake_stripe.payment_intents[pending.provider_payment_id]
    assert action.data == {
        "stripe_action": "use_stripe_sdk",
        "payment_intent": intent["id"],
        "client_secret": intent["client_secret"],
        "publishable_key": "pk_test_durapay_fake",
    }


async def test_failed_three_ds_is_a_decline_after_the_lookup(stripe_gateway, fake_stripe, unique):
    call = STRIPE.authorize(
        pid(unique), "pm_card_threeDSecure2Required", return_url="https://shop.example/return"
    )
    pending = await stripe_gateway.authorize(call)

    async with httpx.AsyncClient() as browser:
        await browser.get(pending.next_action.url, params={"outcome": "fail"})
    result = await stripe_gateway.lookup(
        STRIPE.lookup(call.payment_id, provider_payment_id=pending.provider_payment_id)
    )

    assert result.status is GatewayPaymentStatus.DECLINED
    assert result.failure is not None and result.failure.code == "authentication_failed"
    assert fake_stripe.charges_for(call.payment_id) == []


async def test_requested_three_ds_on_a_manual_capture_ends_authorized(stripe_gateway, fake_stripe, unique):
    call = STRIPE.authorize(
        pid(unique), capture=False, request_three_ds=True, return_url="https://shop.example/r"
    )

    pending = await stripe_gateway.authorize(call)
    assert pending.status is GatewayPaymentStatus.REQUIRES_ACTION
    assert fake_stripe.posts()[0].params["payment_method_options"] == {
        "card": {"request_three_d_secure": "any"}
    }
    fake_stripe.complete_three_ds(pending.provider_payment_id)

    result = await stripe_gateway.lookup(
        STRIPE.lookup(call.payment_id, provider_payment_id=pending.provider_payment_id)
    )
    assert result.status is GatewayPaymentStatus.AUTHORIZED
    assert result.authorized_minor == 4999


async def test_cancel_releases_an_authorization_with_stripes_reason(stripe_gateway, fake_stripe, unique):
    call = STRIPE.authorize(pid(unique), capture=False)
    held = await stripe_gateway.authorize(call)

    cancelled = await stripe_gateway.cancel(
        STRIPE.cancel(call.payment_id, provider_payment_id=held.provider_payment_id)
    )

    assert cancelled.status is GatewayPaymentStatus.CANCELLED
    assert cancelled.provider_response["cancellation_reason"] == "abandoned"
    assert fake_stripe.posts()[-1].params == {"cancellation_reason": "abandoned"}
    assert fake_stripe.charges_for(call.payment_id) == []


async def test_cancel_with_a_reason_stripe_does_not_know_sends_none(stripe_gateway, fake_stripe, unique):
    call = STRIPE.authorize(pid(unique), "pm_card_threeDSecure2Required")
    pending = await stripe_gateway.authorize(call)

    cancelled = await stripe_gateway.cancel(
        STRIPE.cancel(
            call.payment_id, "customer changed their mind", provider_payment_id=pending.provider_payment_id
        )
    )

    assert cancelled.status is GatewayPaymentStatus.CANCELLED
    assert fake_stripe.posts()[-1].params == {}


async def test_cancel_of_a_captured_payment_answers_its_current_state(stripe_gateway, fake_stripe, unique):
    call = STRIPE.authorize(pid(unique))
    paid = await stripe_gateway.authorize(call)

    result = await stripe_gateway.cancel(
        STRIPE.cancel(call.payment_id, "requested_by_customer", provider_payment_id=paid.provider_payment_id)
    )

    assert result.status is GatewayPaymentStatus.SUCCEEDED
    assert result.captured_minor == 4999


async def test_cancel_of_a_payment_never_made_is_not_found(stripe_gateway, fake_stripe, unique):
    result = await stripe_gateway.cancel(STRIPE.cancel(pid(unique)))

    assert result.status is GatewayPaymentStatus.NOT_FOUND
    assert fake_stripe.posts() == []


async def test_lookup_by_our_reference_finds_the_intent_or_says_not_found(
    stripe_gateway, fake_stripe, unique
):
    call = STRIPE.authorize(pid(unique))
    paid = await stripe_gateway.authorize(call)

    found = await stripe_gateway.lookup(STRIPE.lookup(call.payment_id))
    assert found.status is GatewayPaymentStatus.SUCCEEDED
    assert found.provider_payment_id == paid.provider_payment_id
    search = fake_stripe.requests[-1]
    assert search.path == "/v1/payment_intents/search"
    assert search.params["query"] == f"metadata['durapay_payment_id']:'{call.payment_id}'"

    never = await stripe_gateway.lookup(STRIPE.lookup(pid(f"{unique}x")))
    assert never.status is GatewayPaymentStatus.NOT_FOUND


async def test_lookup_of_an_unknown_intent_id_is_not_found(stripe_gateway, unique):
    result = await stripe_gateway.lookup(STRIPE.lookup(pid(unique), provider_payment_id="pi_does_not_exist"))

    assert result.status is GatewayPaymentStatus.NOT_FOUND


async def test_lookup_refuses_an_intent_of_another_payment(stripe_gateway, unique):
    other = await stripe_gateway.authorize(STRIPE.authorize(pid(f"{unique}other")))

    with pytest.raises(GatewayInvalidRequest) as caught:
        await stripe_gateway.lookup(STRIPE.lookup(pid(unique), provider_payment_id=other.provider_payment_id))
    assert caught.value.code == "payment_mismatch"


async def test_a_saved_payment_method_is_used_with_its_stripe_customer(stripe_gateway, fake_stripe, unique):
    customer = await stripe_gateway.create_customer(
        email="a@example.com", name="A", idempotency_key=f"customer-{unique}"
    )
    saved = await stripe_gateway.attach_payment_method(customer_id=customer.id, payment_method="pm_card_visa")

    result = await stripe_gateway.authorize(STRIPE.authorize(pid(unique), saved.id, customer_id=customer.id))

    assert result.status is GatewayPaymentStatus.SUCCEEDED
    assert fake_stripe.posts()[-1].params["customer"] == customer.id


async def test_a_merchant_customer_id_is_not_sent_to_stripe(stripe_gateway, fake_stripe, unique):
    result = await stripe_gateway.authorize(STRIPE.authorize(pid(unique), customer_id="merchant-customer-7"))

    assert result.status is GatewayPaymentStatus.SUCCEEDED
    assert "customer" not in fake_stripe.posts()[-1].params


async def test_only_cards_and_configured_currencies_are_sent(stripe_gateway, fake_stripe, unique):
    with pytest.raises(GatewayInvalidRequest, match="cards only"):
        await stripe_gateway.authorize(STRIPE.authorize(pid(unique), method=BankTransferMethod()))
    with pytest.raises(GatewayInvalidRequest) as caught:
        await stripe_gateway.authorize(STRIPE.authorize(pid(unique), amount=Amount.of("10.00", "GBP")))
    assert caught.value.code == "currency_not_supported"
    with pytest.raises(GatewayInvalidRequest, match="square brackets"):
        await stripe_gateway.authorize(STRIPE.authorize(pid(unique), metadata={"a[b]": "x"}))
    assert fake_stripe.requests == []


async def test_merchant_metadata_and_ours_together_stay_within_stripes_limits(
    stripe_gateway, fake_stripe, unique
):
    """Issue #17 item 2: the API takes up to 48 merchant keys; with our two that is Stripe's 50."""
    merchant = {f"k{i:02d}": "v" for i in range(48)}
    result = await stripe_gateway.authorize(STRIPE.authorize(pid(unique), metadata=merchant))
    assert result.status is GatewayPaymentStatus.SUCCEEDED
    assert len(fake_stripe.payment_intents[result.provider_payment_id]["metadata"]) == 50
    # One more would make Stripe answer 400: refused here, before anything is sent.
    fake_stripe.reset()
    with pytest.raises(GatewayInvalidRequest, match="at most 48"):
        await stripe_gateway.authorize(STRIPE.authorize(pid(unique + "b"), metadata={**merchant, "k48": "v"}))
    assert fake_stripe.posts() == []


async def test_a_lost_create_is_not_declared_never_made_while_search_may_lag(
    stripe_gateway, fake_stripe, unique
):
    """Issue #17 item 4: Stripe's search is eventually consistent. A payment whose create response
    was lost and whose intent Search does not show yet must not be called NOT_FOUND (the workflow
    would fail it, and the charge found later would be refunded): the lookup asks again."""
    fake_stripe.search_index_lag_seconds = 3600
    call = STRIPE.authorize(pid(unique))
    await stripe_gateway.authorize(call)  # charged; its answer "lost"
    just_now = datetime.now(UTC) - timedelta(seconds=5)
    with pytest.raises(GatewayTransientError, match="may not have indexed it yet"):
        await stripe_gateway.lookup(STRIPE.lookup(call.payment_id, created_at=just_now))
    fake_stripe.search_index_lag_seconds = 0  # the index caught up
    found = await stripe_gateway.lookup(STRIPE.lookup(call.payment_id, created_at=just_now))
    assert found.status is GatewayPaymentStatus.SUCCEEDED
    # Long after, an empty search is believed: nothing was ever made.
    long_ago = datetime.now(UTC) - timedelta(days=1)
    never = await stripe_gateway.lookup(STRIPE.lookup(pid(f"{unique}x"), created_at=long_ago))
    assert never.status is GatewayPaymentStatus.NOT_FOUND
