"""How the Stripe adapter reports failures of the call itself: what is safe to retry, what may
already have happened at Stripe, and what is final. The SDK never retries; each failure surfaces."""

from __future__ import annotations

import asyncio
import socket
from contextlib import aclosing

import httpx
import pytest
import stripe

from activities.gateways.base import (
    GatewayConfigError,
    GatewayInvalidRequest,
    GatewayOutcomeUnknown,
    GatewayRateLimited,
    GatewayTransientError,
)
from activities.gateways.stripe.adapter import StripeGateway, translate_error
from activities.gateways.stripe.settings import StripeSettings
from tests.activities.gateways.helpers import STRIPE, pid
from tests.activities.gateways.stripe.stripe_fixtures import (
    fake_stripe,
    stripe_gateway,
    stripe_server,
)
from workflows.gateway_io import GatewayPaymentStatus
from workflows.money import Amount

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")


async def test_a_5xx_burst_before_execution_is_transient_then_one_charge(stripe_gateway, fake_stripe, unique):
    call = STRIPE.authorize(pid(unique))
    fake_stripe.fail_next(2, status=500, path="/v1/payment_intents")

    for _ in range(2):
        with pytest.raises(GatewayTransientError) as caught:
            await stripe_gateway.authorize(call)
        assert not isinstance(caught.value, GatewayOutcomeUnknown)  # Stripe-Should-Retry: true
    result = await stripe_gateway.authorize(call)

    assert result.status is GatewayPaymentStatus.SUCCEEDED
    assert len(fake_stripe.intents_for(call.payment_id)) == 1
    assert len(fake_stripe.charges_for(call.payment_id)) == 1
    assert {r.idempotency_key for r in fake_stripe.posts()} == {call.idempotency_key}


async def test_a_5xx_after_execution_is_an_unknown_outcome_the_lookup_resolves(
    stripe_gateway, fake_stripe, unique
):
    call = STRIPE.authorize(pid(unique))
    fake_stripe.fail_next(1, status=500, executed=True)

    with pytest.raises(GatewayOutcomeUnknown):
        await stripe_gateway.authorize(call)
    # Stripe saved the 500 under the key: the retry hears it again.
    with pytest.raises(GatewayOutcomeUnknown):
        await stripe_gateway.authorize(call)
    assert fake_stripe.requests[-1].replayed

    resolved = await stripe_gateway.lookup(STRIPE.lookup(call.payment_id))
    assert resolved.status is GatewayPaymentStatus.SUCCEEDED
    assert len(fake_stripe.charges_for(call.payment_id)) == 1


async def test_a_5xx_on_a_read_is_transient(stripe_gateway, fake_stripe, unique):
    fake_stripe.fail_next(1, status=502, path="/v1/payment_intents/search")

    with pytest.raises(GatewayTransientError) as caught:
        await stripe_gateway.lookup(STRIPE.lookup(pid(unique)))

    assert not isinstance(caught.value, GatewayOutcomeUnknown)


@pytest.mark.parametrize(("retry_after", "expected"), [(2, 2.0), (None, None)])
async def test_429_is_rate_limited_with_stripes_delay(
    stripe_gateway, fake_stripe, unique, retry_after, expected
):
    call = STRIPE.authorize(pid(unique))
    fake_stripe.rate_limit_next(1, retry_after=retry_after)

    with pytest.raises(GatewayRateLimited) as caught:
        await stripe_gateway.authorize(call)

    assert caught.value.retry_after == expected
    assert (await stripe_gateway.authorize(call)).status is GatewayPaymentStatus.SUCCEEDED
    assert len(fake_stripe.charges_for(call.payment_id)) == 1


async def test_a_dropped_response_after_the_charge_is_unknown_and_the_retry_replays(
    stripe_gateway, fake_stripe, unique
):
    call = STRIPE.authorize(pid(unique))
    fake_stripe.drop_response_next()

    with pytest.raises(GatewayOutcomeUnknown):
        await stripe_gateway.authorize(call)
    assert len(fake_stripe.charges_for(call.payment_id)) == 1  # Stripe did charge

    result = await stripe_gateway.authorize(call)

    assert result.status is GatewayPaymentStatus.SUCCEEDED
    assert fake_stripe.requests[-1].replayed
    assert len(fake_stripe.intents_for(call.payment_id)) == 1
    assert len(fake_stripe.charges_for(call.payment_id)) == 1


async def test_a_timeout_is_unknown_a_retry_while_stripe_works_is_transient(stripe_server, unique):
    stripe_server.reset()
    call = STRIPE.authorize(pid(unique))
    settings = StripeSettings.model_validate(stripe_server.gateway_section(timeout_seconds=0.2))
    async with aclosing(StripeGateway(settings)) as gateway:
        stripe_server.latency = 0.6
        with pytest.raises(GatewayOutcomeUnknown):
            await gateway.authorize(call)
        stripe_server.latency = 0
        # The first request still holds the key at Stripe: 409, safe to retry later.
        with pytest.raises(GatewayTransientError) as caught:
            await gateway.authorize(call)
        assert not isinstance(caught.value, GatewayOutcomeUnknown)
        # The held first request finishes at the fake (its answer recorded, its key saved).
        async with asyncio.timeout(5):
            while stripe_server.requests[0].status == 0:  # noqa: ASYNC110 (polls the fake's record)
                await asyncio.sleep(0.01)

        result = await gateway.authorize(call)

    assert result.status is GatewayPaymentStatus.SUCCEEDED
    assert len(stripe_server.charges_for(call.payment_id)) == 1


async def test_nobody_listening_is_transient_never_unknown(unique):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    section = {"secret_key": "sk_test_x", "webhook_secret": "whsec_x", "api_base": f"http://127.0.0.1:{port}"}
    async with aclosing(StripeGateway(StripeSettings.model_validate(section))) as gateway:
        with pytest.raises(GatewayTransientError) as caught:
            await gateway.authorize(STRIPE.authorize(pid(unique)))

    assert not isinstance(caught.value, GatewayOutcomeUnknown)


async def test_a_wrong_secret_key_is_a_configuration_error(stripe_server, unique):
    settings = StripeSettings.model_validate(
        stripe_server.gateway_section(secret_key="sk_test_not_the_right_one")
    )
    async with aclosing(StripeGateway(settings)) as gateway:
        with pytest.raises(GatewayConfigError) as caught:
            await gateway.authorize(STRIPE.authorize(pid(unique)))

    assert "sk_test_not_the_right_one" not in caught.value.message


async def test_our_key_with_other_parameters_is_final(stripe_gateway, fake_stripe, unique):
    call = STRIPE.authorize(pid(unique))
    await stripe_gateway.authorize(call)

    with pytest.raises(GatewayInvalidRequest) as caught:
        await stripe_gateway.authorize(call.model_copy(update={"amount": Amount.of("50.00", "USD")}))

    assert caught.value.code == "idempotency_error"
    assert len(fake_stripe.intents_for(call.payment_id)) == 1


async def test_stripe_rejecting_the_request_is_final_with_its_message(stripe_gateway, fake_stripe, unique):
    with pytest.raises(GatewayInvalidRequest) as caught:
        await stripe_gateway.authorize(STRIPE.authorize(pid(unique), minor=10))

    assert caught.value.code == "amount_too_small"
    assert "minimum charge amount" in caught.value.message


def stripe_error(cls, status: int, headers: dict[str, str] | None = None) -> stripe.StripeError:
    return cls("boom", http_status=status, headers=headers or {})


@pytest.mark.parametrize(
    ("error", "mutating", "expected"),
    [
        (stripe_error(stripe.APIError, 409), True, GatewayTransientError),
        (stripe_error(stripe.APIError, 503), True, GatewayTransientError),
        (stripe_error(stripe.APIError, 500, {"Stripe-Should-Retry": "false"}), True, GatewayOutcomeUnknown),
        (stripe_error(stripe.APIError, 500), False, GatewayTransientError),
        (stripe_error(stripe.AuthenticationError, 401), False, GatewayConfigError),
        (stripe_error(stripe.PermissionError, 403), True, GatewayConfigError),
    ],
)
def test_error_translation_table(error, mutating, expected):
    translated = translate_error(error, mutating=mutating)

    assert type(translated) is expected


@pytest.mark.parametrize(
    ("cause", "mutating", "expected"),
    [
        (httpx.ConnectError("refused"), True, GatewayTransientError),
        (httpx.ReadTimeout("slow"), True, GatewayOutcomeUnknown),
        (httpx.RemoteProtocolError("gone"), True, GatewayOutcomeUnknown),
        (httpx.ReadTimeout("slow"), False, GatewayTransientError),
    ],
)
def test_connection_errors_by_whether_the_request_left(cause, mutating, expected):
    error = stripe.APIConnectionError("network")
    error.__cause__ = cause

    assert type(translate_error(error, mutating=mutating)) is expected
