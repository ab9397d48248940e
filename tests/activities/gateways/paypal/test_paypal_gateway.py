"""The PayPal adapter against the fake PayPal: the token, PayPal's refusals, faults, settings."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from pydantic import ValidationError

from activities.gateways.base import (
    GatewayConfigError,
    GatewayInvalidRequest,
    GatewayOutcomeUnknown,
    GatewayRateLimited,
    GatewayTransientError,
)
from activities.gateways.paypal.adapter import PayPalGateway
from activities.gateways.paypal.fake import FakePayPal
from activities.gateways.paypal.settings import PRODUCTION_API, SANDBOX_API, PayPalSettings
from activities.gateways.paypal.testkit import approve, wallet
from tests.activities.gateways.helpers import GatewayCalls, pid, serving
from workflows.gateway_io import GatewayPaymentStatus

fake = serving(FakePayPal, scope="module")


@pytest_asyncio.fixture(loop_scope="session")
async def gateway(fake: FakePayPal) -> AsyncIterator[PayPalGateway]:
    built = PayPalGateway(PayPalSettings.model_validate(fake.gateway_section()))
    yield built
    await built.aclose()


def calls(currency: str = "USD", minor: int = 10_000) -> GatewayCalls:
    return GatewayCalls("paypal", currency, lambda *_: wallet(), minor)


async def test_one_token_serves_many_calls_and_a_refused_one_is_replaced(gateway, fake, unique):
    before = fake.token_requests
    for n in range(3):
        result = await gateway.authorize(calls().authorize(pid(f"{unique}{n}")))
        assert result.status is GatewayPaymentStatus.REQUIRES_ACTION
    assert fake.token_requests == before + 1

    fake.expire_tokens()  # PayPal answers 401 to the cached token: fetched again, once
    await gateway.authorize(calls().authorize(pid(f"{unique}x")))
    assert fake.token_requests == before + 2


async def test_wrong_credentials_are_a_configuration_error(fake, unique):
    wrong = PayPalGateway(PayPalSettings.model_validate(fake.gateway_section(client_secret="not-it")))
    try:
        with pytest.raises(GatewayConfigError):
            await wrong.authorize(calls().authorize(pid(unique)))
    finally:
        await wrong.aclose()


async def test_the_create_is_idempotent_on_paypal_request_id(gateway, fake, unique):
    call = calls().authorize(pid(unique))
    first = await gateway.authorize(call)
    again = await gateway.authorize(call)
    assert first.provider_payment_id == again.provider_payment_id
    assert len(fake.orders_for(pid(unique))) == 1
    assert [replayed for path, rid, replayed in fake.requests if rid == call.idempotency_key] == [False, True]


async def test_paypal_refuses_a_capture_before_the_approval(fake, unique):
    created = await PayPalGatewayProbe(fake).create(unique)
    answer = await PayPalGatewayProbe(fake).post(f"/v2/checkout/orders/{created}/capture", {})
    assert (answer.status_code, answer.json()["details"][0]["issue"]) == (422, "ORDER_NOT_APPROVED")


@pytest.mark.parametrize(
    ("money", "issue"),
    [
        ({"currency_code": "USD", "value": "10.001"}, "DECIMAL_PRECISION"),
        ({"currency_code": "JPY", "value": "10.5"}, "DECIMALS_NOT_SUPPORTED"),
        ({"currency_code": "USD", "value": 10}, "INVALID_PARAMETER_SYNTAX"),
        ({"currency_code": "USD", "value": "0.00"}, "AMOUNT_MUST_BE_POSITIVE"),
        ({"value": "1.00"}, "MISSING_REQUIRED_PARAMETER"),
    ],
)
async def test_the_fake_checks_paypals_money_format(fake, money, issue):
    body = {"intent": "CAPTURE", "purchase_units": [{"amount": money}]}
    answer = await PayPalGatewayProbe(fake).post("/v2/checkout/orders", body)
    assert answer.status_code in (400, 422) and answer.json()["details"][0]["issue"] == issue


async def test_a_partial_authorization_capture_then_refunds_past_the_rest_refused(gateway, fake, unique):
    c = calls()
    payment_id = pid(unique)
    pending = await gateway.authorize(c.authorize(payment_id, capture=False))
    assert pending.next_action is not None and pending.next_action.url
    back = await approve(pending.next_action.url)
    held = await gateway.lookup(c.lookup(payment_id, action_data=back))
    assert (held.status, held.authorized_minor) == (GatewayPaymentStatus.AUTHORIZED, 10_000)
    captured = await gateway.capture(
        c.capture(payment_id, 6_000, provider_payment_id=held.provider_payment_id)
    )
    assert (captured.status, captured.captured_minor) == (GatewayPaymentStatus.SUCCEEDED, 6_000)
    with pytest.raises(GatewayInvalidRequest):
        await gateway.refund(
            c.refund(payment_id, "rf_big", 6_001, provider_payment_id=held.provider_payment_id)
        )


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("fail_500", GatewayOutcomeUnknown),
        ("fail_503", GatewayTransientError),
        ("rate_limit", GatewayRateLimited),
    ],
)
async def test_faults_map_to_retryable_errors(gateway, fake, unique, fault, error):
    if fault == "rate_limit":
        fake.faults.rate_limit_next(match="POST /v2/checkout/orders")
    else:
        fake.faults.fail_next(int(fault[-3:]), match="POST /v2/checkout/orders")
    with pytest.raises(error):
        await gateway.authorize(calls().authorize(pid(unique)))
    assert fake.orders_for(pid(unique)) == []  # the fault came before the work


def test_settings() -> None:
    base = {"client_id": "id", "client_secret": "s3cret", "webhook_id": "WH"}
    assert PayPalSettings.model_validate(base).endpoint == PRODUCTION_API
    assert PayPalSettings.model_validate({**base, "sandbox": True}).endpoint == SANDBOX_API
    assert "s3cret" not in repr(PayPalSettings.model_validate(base))
    with pytest.raises(ValidationError):
        PayPalSettings.model_validate({**base, "api_base": "http://paypal.example"})
    with pytest.raises(ValidationError):
        PayPalSettings.model_validate({**base, "client_secret": " "})
    with pytest.raises(ValidationError):
        PayPalSettings.model_validate({**base, "currencies": ["XXX1"]})


class PayPalGatewayProbe:
    """Raw calls to the fake, as a client that gets its own token."""

    def __init__(self, fake: FakePayPal) -> None:
        self.fake = fake

    async def _token(self, client: httpx.AsyncClient) -> str:
        answer = await client.post(
            "/v1/oauth2/token",
            data={"grant_type": "client_credentials"},
            auth=(self.fake.client_id, self.fake.client_secret),
        )
        return str(answer.json()["access_token"])

    async def post(self, path: str, body: dict) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.fake.url) as client:
            token = await self._token(client)
            return await client.post(path, json=body, headers={"Authorization": f"Bearer {token}"})

    async def create(self, unique: str) -> str:
        body = {
            "intent": "CAPTURE",
            "purchase_units": [
                {"custom_id": pid(unique), "amount": {"currency_code": "USD", "value": "1.00"}}
            ],
        }
        answer = await self.post("/v2/checkout/orders", body)
        assert answer.status_code == 201, answer.text
        return str(answer.json()["id"])


async def test_the_fake_wants_a_bearer_token(fake):
    async with httpx.AsyncClient(base_url=fake.url) as client:
        anonymous = await client.get("/v2/checkout/orders/ANY")
        basic = await client.get("/v2/checkout/orders/ANY", auth=(fake.client_id, fake.client_secret))
    assert (anonymous.status_code, basic.status_code) == (401, 401)
