"""The Airwallex adapter against the fake Airwallex: the login token (cached, refreshed before it
ends and once on a 401), the wire (decimal amounts, request ids, next actions), how failures of
the call itself are reported, and what the fake refuses as Airwallex does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from decimal import Decimal
from typing import Any

import httpx
import pytest
import pytest_asyncio

from activities.gateways.airwallex.adapter import AirwallexGateway
from activities.gateways.airwallex.fake import CARD_3DS, CARD_DECLINED, CARD_SUCCESS, FakeAirwallex
from activities.gateways.airwallex.settings import AirwallexSettings
from activities.gateways.airwallex.transform import REQUEST_ID_MAX, decode, encode, request_id
from activities.gateways.base import (
    GatewayConfigError,
    GatewayInvalidRequest,
    GatewayOutcomeUnknown,
    GatewayRateLimited,
    GatewayTransientError,
)
from tests.activities.gateways.helpers import QUICK_HTTP, GatewayCalls, pid, serving
from workflows.domain import CardMethod, NextActionType
from workflows.gateway_io import GatewayPaymentStatus
from workflows.money import Amount

AIRWALLEX = GatewayCalls(
    "airwallex",
    "USD",
    lambda token=CARD_SUCCESS: CardMethod(token=token),
    minor=4999,
    refund_reason="damaged",
)

fake = serving(FakeAirwallex, scope="module")


def settings(fake: FakeAirwallex, **overrides: Any) -> AirwallexSettings:
    return AirwallexSettings.model_validate(fake.gateway_section(http=QUICK_HTTP, **overrides))


@pytest_asyncio.fixture(loop_scope="session")
async def gateway(fake: FakeAirwallex) -> AsyncIterator[AirwallexGateway]:
    fake.faults.clear()
    async with aclosing(AirwallexGateway(settings(fake))) as gw:
        yield gw


# -- the token -------------------------------------------------------------------------------------


async def test_one_login_serves_many_calls(fake, gateway, unique):
    before = fake.logins
    for n in range(3):
        result = await gateway.authorize(AIRWALLEX.authorize(pid(f"{unique}{n}")))
        assert result.status is GatewayPaymentStatus.SUCCEEDED
    assert fake.logins == before + 1


async def test_a_token_about_to_expire_is_replaced_before_use(fake, unique):
    short = FakeAirwallex(token_ttl_seconds=60)  # inside the adapter's two-minute margin
    async with short, aclosing(AirwallexGateway(settings(short))) as gw:
        for n in range(2):
            await gw.lookup(AIRWALLEX.lookup(pid(f"{unique}{n}")))
        assert short.logins == 2


async def test_a_refused_token_is_replaced_once_and_the_call_goes_through(fake, gateway, unique):
    await gateway.lookup(AIRWALLEX.lookup(pid(unique)))
    before = fake.logins
    fake.revoke_tokens()

    result = await gateway.authorize(AIRWALLEX.authorize(pid(unique)))

    assert result.status is GatewayPaymentStatus.SUCCEEDED
    assert fake.logins == before + 1
    assert len(fake.intents_for(pid(unique))) == 1


async def test_wrong_credentials_are_a_configuration_error(fake, unique):
    async with aclosing(AirwallexGateway(settings(fake, api_key="not-the-key"))) as gw:
        with pytest.raises(GatewayConfigError):
            await gw.authorize(AIRWALLEX.authorize(pid(unique)))
    assert fake.intents_for(pid(unique)) == []


# -- the wire --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("currency", "minor", "wire"), [("USD", 1234, Decimal("12.34")), ("JPY", 5000, 5000)]
)
async def test_amounts_are_decimals_in_major_units(fake, gateway, unique, currency, minor, wire):
    call = AIRWALLEX.authorize(pid(unique), amount=Amount(minor=minor, currency=currency))

    result = await gateway.authorize(call)

    assert (result.status, result.captured_minor) == (GatewayPaymentStatus.SUCCEEDED, minor)
    [create] = [r for r in fake.posts("create") if r.body["merchant_order_id"] == pid(unique)]
    assert create.body["amount"] == wire and type(create.body["amount"]) is type(wire)


async def test_a_currency_not_configured_is_refused_before_anything_is_sent(fake, gateway, unique):
    call = AIRWALLEX.authorize(pid(unique), amount=Amount(minor=12_340, currency="KWD"))
    with pytest.raises(GatewayInvalidRequest):
        await gateway.authorize(call)
    assert fake.intents_for(pid(unique)) == []


def test_request_ids_fit_airwallex_and_stay_stable():
    short = request_id("payment-pay_x:authorize", "create")
    assert short == "payment-pay_x:authorize:create"
    long_key = "payment-pay_" + "x" * 30 + ":refund:ref_" + "y" * 30
    assert len(request_id(long_key, "refund")) <= REQUEST_ID_MAX
    assert request_id(long_key, "refund") == request_id(long_key, "refund")
    assert request_id(long_key, "refund") != request_id(long_key + "z", "refund")


def test_decimals_travel_as_json_numbers_never_floats():
    body = encode({"amount": Decimal("0.10"), "n": [Decimal("1"), 2], "s": "x", "b": True, "z": None})
    assert body == b'{"amount":0.10,"n":[1,2],"s":"x","b":true,"z":null}'
    assert decode(body)["amount"] == Decimal("0.10")


async def test_three_ds_is_a_redirect_and_manual_capture_leaves_a_hold(fake, gateway, unique):
    waiting = await gateway.authorize(
        AIRWALLEX.authorize(pid(unique), CARD_3DS, return_url="https://s.example/b")
    )
    assert waiting.status is GatewayPaymentStatus.REQUIRES_ACTION and waiting.next_action is not None
    assert waiting.next_action.type is NextActionType.REDIRECT_TO_URL
    assert waiting.next_action.url == f"{fake.base_url}/3ds/{waiting.provider_payment_id}"
    assert waiting.next_action.data == {"method": "GET"}

    forced = await gateway.authorize(
        AIRWALLEX.authorize(pid(f"{unique}f"), request_three_ds=True, capture=False)
    )
    assert forced.status is GatewayPaymentStatus.REQUIRES_ACTION
    assert forced.provider_payment_id is not None
    fake.complete_three_ds(forced.provider_payment_id)
    held = await gateway.lookup(AIRWALLEX.lookup(pid(f"{unique}f")))
    assert (held.status, held.authorized_minor) == (GatewayPaymentStatus.AUTHORIZED, 4999)


async def test_a_decline_is_final_and_not_tried_again(fake, gateway, unique):
    call = AIRWALLEX.authorize(pid(unique), CARD_DECLINED)
    first = await gateway.authorize(call)
    again = await gateway.authorize(call)

    assert first.status is again.status is GatewayPaymentStatus.DECLINED
    assert first.failure is not None and first.failure.decline_code == "issuer_declined"
    [intent] = fake.intents_for(pid(unique))
    assert [r.replayed for r in fake.posts("confirm") if intent.id in r.path] == [False, True]


# -- failures of the call itself -------------------------------------------------------------------


async def test_5xx_may_have_acted_503_did_not_429_waits(fake, gateway, unique):
    call = AIRWALLEX.authorize(pid(unique))
    fake.faults.fail_next(500, match="confirm")
    with pytest.raises(GatewayOutcomeUnknown):
        await gateway.authorize(call)
    fake.faults.fail_next(503, match="confirm")
    with pytest.raises(GatewayTransientError) as caught:
        await gateway.authorize(call)
    assert not isinstance(caught.value, GatewayOutcomeUnknown)
    fake.faults.rate_limit_next(retry_after="2", match="confirm")
    with pytest.raises(GatewayRateLimited) as limited:
        await gateway.authorize(call)
    assert limited.value.retry_after == 2.0

    result = await gateway.authorize(call)
    assert result.status is GatewayPaymentStatus.SUCCEEDED
    assert len(fake.intents_for(pid(unique))) == 1


async def test_a_lost_capture_answer_captures_once(fake, gateway, unique):
    hold = await gateway.authorize(AIRWALLEX.authorize(pid(unique), capture=False))
    capture = AIRWALLEX.capture(pid(unique), 2000, provider_payment_id=hold.provider_payment_id)
    fake.faults.drop_next(match="capture")
    with pytest.raises(GatewayOutcomeUnknown):
        await gateway.capture(capture)

    again = await gateway.capture(capture)

    assert (again.status, again.captured_minor) == (GatewayPaymentStatus.SUCCEEDED, 2000)
    [intent] = fake.intents_for(pid(unique))
    assert intent.captured_amount == Decimal("20.00")
    assert [r.replayed for r in fake.posts("capture") if intent.id in r.path] == [False, True]


async def test_a_refund_is_found_by_our_refund_id(fake, gateway, unique):
    sale = await gateway.authorize(AIRWALLEX.authorize(pid(unique)))
    refund = AIRWALLEX.refund(pid(unique), "rf_1", 1000, provider_payment_id=sale.provider_payment_id)
    made = await gateway.refund(refund)

    found = await gateway.lookup_refund(AIRWALLEX.refund_lookup(pid(unique), "rf_1"))
    missing = await gateway.lookup_refund(AIRWALLEX.refund_lookup(pid(unique), "rf_2"))

    assert (found.status, found.provider_refund_id) == (made.status, made.provider_refund_id)
    assert missing.failure is not None and missing.failure.code == "refund_not_found"


# -- what the fake refuses, as Airwallex does ----------------------------------------------------------


async def _raw_create(fake: FakeAirwallex, body: bytes) -> httpx.Response:
    async with httpx.AsyncClient(base_url=fake.base_url) as client:
        login = await client.post(
            "/api/v1/authentication/login", headers={"x-client-id": fake.client_id, "x-api-key": fake.api_key}
        )
        token = login.json()["token"]
        return await client.post(
            "/api/v1/pa/payment_intents/create",
            content=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b'{"request_id":"r1","amount":1.234,"currency":"USD","merchant_order_id":"o"}', "validation_error"),
        (b'{"request_id":"r2","amount":10.5,"currency":"JPY","merchant_order_id":"o"}', "validation_error"),
        (
            b'{"request_id":"r3","amount":"10.00","currency":"USD","merchant_order_id":"o"}',
            "validation_error",
        ),
        (b'{"request_id":"r4","amount":10,"currency":"USD"}', "validation_error"),
        (b'{"amount":10,"currency":"USD","merchant_order_id":"o"}', "validation_error"),
    ],
)
async def test_the_fake_refuses_what_airwallex_refuses(fake, body, code):
    answer = await _raw_create(fake, body)
    assert (answer.status_code, answer.json()["code"]) == (400, code)


async def test_the_fake_replays_a_request_id_and_refuses_it_with_other_parameters(fake, unique):
    body = f'{{"request_id":"{unique}","amount":10,"currency":"USD","merchant_order_id":"{unique}"}}'
    first = await _raw_create(fake, body.encode())
    again = await _raw_create(fake, body.encode())
    other = await _raw_create(fake, body.replace('"amount":10', '"amount":11').encode())

    assert (first.status_code, again.json()["id"]) == (201, first.json()["id"])
    assert (other.status_code, other.json()["code"]) == (400, "duplicate_request")
    assert len(fake.intents_for(unique)) == 1


async def test_the_fake_wants_a_bearer_token(fake):
    async with httpx.AsyncClient(base_url=fake.base_url) as client:
        answer = await client.get("/api/v1/pa/payment_intents", headers={"Authorization": "Bearer nope"})
    assert answer.status_code == 401
