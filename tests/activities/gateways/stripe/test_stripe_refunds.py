"""Stripe refunds (full, partial, several, each under its own key) and customers with saved cards."""

from __future__ import annotations

import pytest

from activities.gateways.base import GatewayInvalidRequest
from tests.activities.gateways.helpers import STRIPE, pid
from tests.activities.gateways.stripe.stripe_fixtures import (
    fake_stripe,
    stripe_gateway,
    stripe_server,
)
from workflows.domain import RefundStatus
from workflows.gateway_io import GatewayPaymentStatus

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")


async def charged(gateway, unique: str) -> tuple[str, str]:
    """A 100.00 USD card payment, captured: (our payment id, Stripe's intent id)."""
    payment_id = pid(unique)
    result = await gateway.authorize(STRIPE.authorize(payment_id, minor=10000))
    assert result.status is GatewayPaymentStatus.SUCCEEDED
    return payment_id, result.provider_payment_id


async def test_several_partial_refunds_each_under_its_own_key(stripe_gateway, fake_stripe, unique):
    payment_id, intent_id = await charged(stripe_gateway, unique)

    first = await stripe_gateway.refund(
        STRIPE.refund(payment_id, "re_1", 3000, provider_payment_id=intent_id, reason="requested_by_customer")
    )
    second = await stripe_gateway.refund(
        STRIPE.refund(payment_id, "re_2", 2000, provider_payment_id=intent_id, reason="damaged in transit")
    )

    assert (first.refund_id, first.status) == ("re_1", RefundStatus.SUCCEEDED)
    assert (second.refund_id, second.status) == ("re_2", RefundStatus.SUCCEEDED)
    assert first.provider_refund_id != second.provider_refund_id
    posts = fake_stripe.posts("/v1/refunds")
    assert [p.idempotency_key for p in posts] == [
        f"payment-{payment_id}:refund:re_1",
        f"payment-{payment_id}:refund:re_2",
    ]
    assert posts[0].params["reason"] == "requested_by_customer"
    # Free text is not one of Stripe's reasons: it travels in metadata instead.
    assert "reason" not in posts[1].params
    assert posts[1].params["metadata"]["durapay_refund_reason"] == "damaged in transit"
    refunds = [fake_stripe.refunds[r.provider_refund_id] for r in (first, second)]
    assert [(r["amount"], r["metadata"]["durapay_refund_id"]) for r in refunds] == [
        (3000, "re_1"),
        (2000, "re_2"),
    ]
    assert all(r["metadata"]["durapay_payment_id"] == payment_id for r in refunds)
    [charge] = fake_stripe.charges_for(payment_id)
    assert charge["amount_refunded"] == 5000 and not charge["refunded"]


async def test_a_retried_refund_replays_instead_of_refunding_twice(stripe_gateway, fake_stripe, unique):
    payment_id, intent_id = await charged(stripe_gateway, unique)
    call = STRIPE.refund(payment_id, "re_1", 10000, provider_payment_id=intent_id)

    first = await stripe_gateway.refund(call)
    again = await stripe_gateway.refund(call)

    assert again == first
    assert len(fake_stripe.refunds) == 1
    assert fake_stripe.charges_for(payment_id)[0]["refunded"] is True


async def test_refunding_more_than_is_left_is_a_final_invalid_request(stripe_gateway, fake_stripe, unique):
    payment_id, intent_id = await charged(stripe_gateway, unique)
    await stripe_gateway.refund(STRIPE.refund(payment_id, "re_1", 8000, provider_payment_id=intent_id))

    with pytest.raises(GatewayInvalidRequest) as caught:
        await stripe_gateway.refund(STRIPE.refund(payment_id, "re_2", 3000, provider_payment_id=intent_id))

    assert caught.value.code == "amount_too_large"
    assert "greater than unrefunded amount" in caught.value.message


async def test_refund_finds_the_intent_by_our_reference_when_its_id_was_lost(
    stripe_gateway, fake_stripe, unique
):
    payment_id, intent_id = await charged(stripe_gateway, unique)

    result = await stripe_gateway.refund(STRIPE.refund(payment_id, "re_1", 1000, provider_payment_id=None))

    assert result.status is RefundStatus.SUCCEEDED
    assert fake_stripe.refunds[result.provider_refund_id]["payment_intent"] == intent_id


async def test_a_pending_refund_is_looked_up_by_either_id(stripe_gateway, fake_stripe, unique):
    fake_stripe.refund_status = "pending"
    payment_id, intent_id = await charged(stripe_gateway, unique)
    pending = await stripe_gateway.refund(
        STRIPE.refund(payment_id, "re_1", 1000, provider_payment_id=intent_id)
    )
    await stripe_gateway.refund(STRIPE.refund(payment_id, "re_2", 1500, provider_payment_id=intent_id))
    assert pending.status is RefundStatus.PENDING
    fake_stripe.settle_refund(pending.provider_refund_id)

    by_provider_id = await stripe_gateway.lookup_refund(
        STRIPE.refund_lookup(
            payment_id, "re_1", provider_payment_id=intent_id, provider_refund_id=pending.provider_refund_id
        )
    )
    by_our_id = await stripe_gateway.lookup_refund(
        STRIPE.refund_lookup(payment_id, "re_2", provider_payment_id=intent_id)
    )

    assert by_provider_id.status is RefundStatus.SUCCEEDED
    assert (by_our_id.refund_id, by_our_id.status) == ("re_2", RefundStatus.PENDING)
    assert by_our_id.provider_refund_id != pending.provider_refund_id


async def test_a_failed_refund_and_one_never_made(stripe_gateway, fake_stripe, unique):
    fake_stripe.refund_status = "pending"
    payment_id, intent_id = await charged(stripe_gateway, unique)
    pending = await stripe_gateway.refund(
        STRIPE.refund(payment_id, "re_1", 1000, provider_payment_id=intent_id)
    )
    fake_stripe.settle_refund(pending.provider_refund_id, succeed=False)

    failed = await stripe_gateway.lookup_refund(
        STRIPE.refund_lookup(payment_id, "re_1", provider_payment_id=intent_id)
    )
    never = await stripe_gateway.lookup_refund(
        STRIPE.refund_lookup(payment_id, "re_9", provider_payment_id=intent_id)
    )

    assert failed.status is RefundStatus.FAILED
    assert failed.failure is not None and "expired_or_canceled_card" in failed.failure.message
    assert never.status is RefundStatus.FAILED
    assert never.failure is not None and never.failure.code == "refund_not_found"


async def test_customers_save_list_and_detach_cards(stripe_gateway, fake_stripe, unique):
    customer = await stripe_gateway.create_customer(
        email="ada@example.com", name="Ada", idempotency_key=f"customer-{unique}"
    )
    same = await stripe_gateway.create_customer(
        email="ada@example.com", name="Ada", idempotency_key=f"customer-{unique}"
    )
    assert same == customer and len(fake_stripe.customers) == 1
    assert (customer.email, customer.name) == ("ada@example.com", "Ada")

    visa = await stripe_gateway.attach_payment_method(customer_id=customer.id, payment_method="pm_card_visa")
    mastercard = await stripe_gateway.attach_payment_method(
        customer_id=customer.id, payment_method="pm_card_mastercard"
    )
    assert (visa.brand, visa.last4, visa.type) == ("visa", "4242", "card")
    assert visa.id.startswith("pm_") and visa.id != "pm_card_visa"  # test ids mint a new method
    # Attached under a key derived from the operation, never a random one.
    assert fake_stripe.posts("/v1/payment_methods/pm_card_visa/attach")[0].idempotency_key == (
        f"attach:pm_card_visa:{customer.id}"
    )

    listed = await stripe_gateway.list_payment_methods(customer_id=customer.id)
    assert {m.id for m in listed} == {visa.id, mastercard.id}

    detached = await stripe_gateway.detach_payment_method(payment_method=visa.id)
    assert detached.id == visa.id
    assert [m.id for m in await stripe_gateway.list_payment_methods(customer_id=customer.id)] == [
        mastercard.id
    ]
    # Stripe never lets a detached card back in.
    with pytest.raises(GatewayInvalidRequest):
        await stripe_gateway.attach_payment_method(customer_id=customer.id, payment_method=visa.id)


async def test_listing_pages_through_many_cards(stripe_gateway, fake_stripe, unique):
    customer = await stripe_gateway.create_customer(
        email=None, name=None, idempotency_key=f"customer-{unique}"
    )
    for test_card in ("pm_card_visa", "pm_card_mastercard", "pm_card_chargeDeclined"):
        await stripe_gateway.attach_payment_method(customer_id=customer.id, payment_method=test_card)
    fake_stripe.max_page_size = 2

    listed = await stripe_gateway.list_payment_methods(customer_id=customer.id)

    assert len({m.id for m in listed}) == 3
    pages = [r for r in fake_stripe.requests if r.path.endswith("/payment_methods")]
    assert [p.params.get("starting_after") for p in pages] == [None, listed[1].id]
