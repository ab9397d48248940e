"""The mock gateway behaves like a provider: per-token outcomes, idempotent retries, partial capture
and refunds, lookups, saved payment methods, and Stripe-style signed webhooks."""

from __future__ import annotations

import json
import time

import pytest
from aiohttp import web
from pydantic import SecretStr

from activities.gateways.base import (
    GatewayConfigError,
    GatewayInvalidRequest,
    GatewayOutcomeUnknown,
    GatewayRateLimited,
    GatewayTransientError,
    WebhookVerificationError,
)
from activities.gateways.mock.adapter import MockGateway, MockWebhook, build
from activities.gateways.mock.settings import MockSettings
from activities.gateways.signing import hmac_sha256_hex
from workflows.domain import (
    BankTransferMethod,
    CardMethod,
    NextActionType,
    RefundStatus,
    WalletMethod,
)
from workflows.gateway_io import (
    AuthorizeCall,
    CancelCall,
    CaptureCall,
    GatewayEventKind,
    GatewayPaymentStatus,
    LookupCall,
    RefundCall,
    RefundLookupCall,
)
from workflows.money import Amount

SECRET = "whsec_test_current"
OLD_SECRET = "whsec_test_previous"


@pytest.fixture
def gateway() -> MockGateway:
    return build(MockSettings(enabled=True, webhook_secret=SecretStr(SECRET), retry_after_seconds=0.25))


def authorize_call(
    unique: str,
    token: str = "tok_visa",
    *,
    capture: bool = True,
    minor: int = 5000,
    currency: str = "USD",
    **extra,
) -> AuthorizeCall:
    payment_id = f"pay_{unique}"
    return AuthorizeCall(
        gateway="mock",
        payment_id=payment_id,
        order_id=f"ord_{unique}",
        amount=Amount(minor=minor, currency=currency),
        method=extra.pop("method", CardMethod(token=token)),
        capture=capture,
        idempotency_key=f"payment-{payment_id}:authorize",
        **extra,
    )


def capture_call(auth: AuthorizeCall, minor: int, key: str = "capture") -> CaptureCall:
    return CaptureCall(
        gateway="mock",
        payment_id=auth.payment_id,
        provider_payment_id=None,
        amount=auth.amount.with_minor(minor),
        idempotency_key=f"payment-{auth.payment_id}:{key}",
    )


def refund_call(auth: AuthorizeCall, refund_id: str, minor: int) -> RefundCall:
    return RefundCall(
        gateway="mock",
        payment_id=auth.payment_id,
        provider_payment_id=None,
        refund_id=refund_id,
        amount=auth.amount.with_minor(minor),
        idempotency_key=f"payment-{auth.payment_id}:refund:{refund_id}",
    )


def lookup_call(auth: AuthorizeCall, **action_data: str) -> LookupCall:
    return LookupCall(gateway="mock", payment_id=auth.payment_id, amount=auth.amount, action_data=action_data)


# -- authorize per token ------------------------------------------------------------------------


@pytest.mark.parametrize("token", ["tok_visa", "tok_mastercard", "pm_card_visa"])
async def test_success_tokens_sale_captures_everything(gateway: MockGateway, unique: str, token: str) -> None:
    result = await gateway.authorize(authorize_call(unique, token))
    assert result.status == GatewayPaymentStatus.SUCCEEDED
    assert result.authorized_minor == result.captured_minor == 5000
    assert result.provider_payment_id and result.provider_payment_id.startswith("pi_mock_")
    assert result.failure is None and result.next_action is None


async def test_authorize_only_holds_without_capturing(gateway: MockGateway, unique: str) -> None:
    result = await gateway.authorize(authorize_call(unique, capture=False))
    assert result.status == GatewayPaymentStatus.AUTHORIZED
    assert (result.authorized_minor, result.captured_minor) == (5000, None)


@pytest.mark.parametrize(
    ("token", "decline_code"),
    [
        ("tok_chargeDeclined", "generic_decline"),
        ("tok_chargeDeclinedInsufficientFunds", "insufficient_funds"),
    ],
)
async def test_decline_tokens(gateway: MockGateway, unique: str, token: str, decline_code: str) -> None:
    result = await gateway.authorize(authorize_call(unique, token))
    assert result.status == GatewayPaymentStatus.DECLINED
    assert result.failure is not None
    assert (result.failure.code, result.failure.decline_code) == ("card_declined", decline_code)
    assert result.captured_minor is None
    assert result.provider_response["decline_code"] == decline_code


async def test_three_ds_redirect_then_completes_on_lookup_with_return_data(
    gateway: MockGateway, unique: str
) -> None:
    auth = authorize_call(unique, "tok_threeDSecure2Required", return_url="https://shop.example/back")
    result = await gateway.authorize(auth)
    assert result.status == GatewayPaymentStatus.REQUIRES_ACTION
    assert result.next_action is not None and result.next_action.type == NextActionType.REDIRECT_TO_URL
    assert result.next_action.url is not None and result.provider_payment_id in result.next_action.url
    assert "return_url=https%3A%2F%2Fshop.example%2Fback" in result.next_action.url

    # No return data yet: the customer has not come back.
    assert (await gateway.lookup(lookup_call(auth))).status == GatewayPaymentStatus.REQUIRES_ACTION

    done = await gateway.lookup(lookup_call(auth, three_ds_result="authenticated"))
    assert done.status == GatewayPaymentStatus.SUCCEEDED and done.captured_minor == 5000
    assert done.next_action is None
    # And it stays completed.
    assert (await gateway.lookup(lookup_call(auth))).status == GatewayPaymentStatus.SUCCEEDED


@pytest.mark.parametrize("outcome", ["failed", "abandoned"])
async def test_three_ds_failed_or_abandoned_declines(gateway: MockGateway, unique: str, outcome: str) -> None:
    auth = authorize_call(unique, "tok_threeDSecure2Required", capture=False)
    await gateway.authorize(auth)
    result = await gateway.lookup(lookup_call(auth, three_ds_result=outcome))
    assert result.status == GatewayPaymentStatus.DECLINED
    assert result.failure is not None and result.failure.decline_code == f"three_ds_{outcome}"
    assert result.authorized_minor is None


async def test_three_ds_authorize_only_completes_as_authorized(gateway: MockGateway, unique: str) -> None:
    auth = authorize_call(unique, "tok_threeDSecure2Required", capture=False)
    await gateway.authorize(auth)
    result = await gateway.lookup(lookup_call(auth, payment_intent="whatever"))
    assert (result.status, result.authorized_minor) == (GatewayPaymentStatus.AUTHORIZED, 5000)


async def test_requested_three_ds_challenges_a_success_token(gateway: MockGateway, unique: str) -> None:
    result = await gateway.authorize(authorize_call(unique, request_three_ds=True))
    assert result.status == GatewayPaymentStatus.REQUIRES_ACTION


async def test_transient_token_fails_n_times_per_key_then_charges_once(
    gateway: MockGateway, unique: str
) -> None:
    auth = authorize_call(unique, "tok_transient_2")
    for _ in range(2):
        with pytest.raises(GatewayTransientError) as err:
            await gateway.authorize(auth)
        assert not isinstance(err.value, GatewayOutcomeUnknown)
    # Nothing was recorded while failing.
    assert (await gateway.lookup(lookup_call(auth))).status == GatewayPaymentStatus.NOT_FOUND
    first = await gateway.authorize(auth)
    again = await gateway.authorize(auth)
    assert first.status == GatewayPaymentStatus.SUCCEEDED
    assert again == first
    # Captures and refunds carry their own keys, and fail N times each too.
    refund = refund_call(auth, "ref_1", 1000)
    for _ in range(2):
        with pytest.raises(GatewayTransientError):
            await gateway.refund(refund)
    assert (await gateway.refund(refund)).status == RefundStatus.SUCCEEDED


async def test_timeout_token_records_the_charge_then_drops_the_answer(
    gateway: MockGateway, unique: str
) -> None:
    auth = authorize_call(unique, "tok_timeout")
    with pytest.raises(GatewayOutcomeUnknown):
        await gateway.authorize(auth)
    # The provider did act: a lookup by our payment id finds the charge...
    seen = await gateway.lookup(lookup_call(auth))
    assert seen.status == GatewayPaymentStatus.SUCCEEDED
    # ...and the retry with the same key returns it instead of charging again.
    retried = await gateway.authorize(auth)
    assert retried.provider_payment_id == seen.provider_payment_id
    assert retried.captured_minor == 5000
    refund = refund_call(auth, "ref_all", 5000)
    with pytest.raises(GatewayOutcomeUnknown):
        await gateway.refund(refund)
    assert (await gateway.refund(refund)).status == RefundStatus.SUCCEEDED
    # Still one refund of 5000, not two: a further refund finds nothing left.
    with pytest.raises(GatewayInvalidRequest):
        await gateway.refund(refund_call(auth, "ref_more", 1))


async def test_ratelimited_token_asks_to_wait(gateway: MockGateway, unique: str) -> None:
    auth = authorize_call(unique, "tok_ratelimited_1")
    with pytest.raises(GatewayRateLimited) as err:
        await gateway.authorize(auth)
    assert err.value.retry_after == 0.25
    assert (await gateway.authorize(auth)).status == GatewayPaymentStatus.SUCCEEDED


async def test_async_token_completes_only_when_settled(gateway: MockGateway, unique: str) -> None:
    auth = authorize_call(unique, "tok_async_webhook")
    result = await gateway.authorize(auth)
    assert result.status == GatewayPaymentStatus.PROCESSING
    assert (await gateway.lookup(lookup_call(auth, anything="x"))).status == GatewayPaymentStatus.PROCESSING

    event = gateway.settle(auth.payment_id)
    assert event.type == GatewayEventKind.PAYMENT_SUCCEEDED
    assert (event.payment_id, event.provider_payment_id) == (auth.payment_id, result.provider_payment_id)
    assert (event.amount_minor, event.currency) == (5000, "USD")
    assert (await gateway.lookup(lookup_call(auth))).status == GatewayPaymentStatus.SUCCEEDED
    with pytest.raises(GatewayInvalidRequest):
        gateway.settle(auth.payment_id)  # already settled


async def test_async_token_settled_as_failed(gateway: MockGateway, unique: str) -> None:
    auth = authorize_call(
        unique, method=WalletMethod(wallet="wechat_pay", flow="native", token="tok_async_webhook")
    )
    wallet_gateway = build(MockSettings(methods=["card", "wallet:wechat_pay"], currencies=["CNY", "USD"]))
    assert (await wallet_gateway.authorize(auth)).status == GatewayPaymentStatus.PROCESSING
    event = wallet_gateway.settle(auth.payment_id, succeeded=False)
    assert event.type == GatewayEventKind.PAYMENT_FAILED and event.failure_code == "payment_failed"
    assert (await wallet_gateway.lookup(lookup_call(auth))).status == GatewayPaymentStatus.DECLINED


# -- idempotency and validation ------------------------------------------------------------------


async def test_same_key_other_parameters_is_refused(gateway: MockGateway, unique: str) -> None:
    auth = authorize_call(unique)
    await gateway.authorize(auth)
    with pytest.raises(GatewayInvalidRequest) as err:
        await gateway.authorize(auth.model_copy(update={"amount": Amount(minor=6000, currency="USD")}))
    assert err.value.code == "idempotency_key_reused"


async def test_a_replayed_result_is_a_copy(gateway: MockGateway, unique: str) -> None:
    auth = authorize_call(unique)
    first = await gateway.authorize(auth)
    first.provider_response["tampered"] = "yes"
    assert "tampered" not in (await gateway.authorize(auth)).provider_response


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"amount": Amount(minor=5000, currency="CHF")}, "currency_not_supported"),
        ({"amount": Amount(minor=10**13, currency="USD")}, "amount_out_of_range"),
        ({"method": CardMethod(token="tok_unknown")}, "resource_missing"),
        ({"method": CardMethod(token="4242424242424242")}, "resource_missing"),
        ({"method": BankTransferMethod()}, "payment_method_not_supported"),
        ({"method": WalletMethod(wallet="alipay", token="tok_visa")}, "payment_method_not_supported"),
    ],
)
async def test_refuses_what_the_profile_does_not_accept(
    gateway: MockGateway, unique: str, change: dict, code: str
) -> None:
    with pytest.raises(GatewayInvalidRequest) as err:
        await gateway.authorize(authorize_call(unique).model_copy(update=change))
    assert err.value.code == code
    assert "4242424242424242" not in err.value.message


async def test_latency_is_simulated(unique: str) -> None:
    slow = build(MockSettings(latency_ms=60))
    started = time.monotonic()
    await slow.authorize(authorize_call(unique))
    assert time.monotonic() - started >= 0.05


# -- capture, cancel, refunds, lookups ------------------------------------------------------------


async def test_partial_capture_then_several_refunds_never_above_captured(
    gateway: MockGateway, unique: str
) -> None:
    auth = authorize_call(unique, capture=False, minor=10000)
    await gateway.authorize(auth)
    with pytest.raises(GatewayInvalidRequest) as err:
        await gateway.capture(capture_call(auth, 10001, key="capture:too-much"))
    assert err.value.code == "amount_too_large"

    captured = await gateway.capture(capture_call(auth, 7000))
    assert (captured.status, captured.authorized_minor, captured.captured_minor) == (
        GatewayPaymentStatus.SUCCEEDED,
        10000,
        7000,
    )
    assert await gateway.capture(capture_call(auth, 7000)) == captured  # retry: same answer
    with pytest.raises(GatewayInvalidRequest):
        await gateway.capture(capture_call(auth, 1000, key="capture:again"))  # already captured

    first = await gateway.refund(refund_call(auth, "ref_a", 3000))
    second = await gateway.refund(refund_call(auth, "ref_b", 3000))
    assert first.status == second.status == RefundStatus.SUCCEEDED
    assert first.provider_refund_id != second.provider_refund_id
    with pytest.raises(GatewayInvalidRequest) as err:
        await gateway.refund(refund_call(auth, "ref_c", 1001))  # 1000 left of the 7000 captured
    assert err.value.code == "amount_too_large"
    assert (await gateway.refund(refund_call(auth, "ref_c", 1000))).status == RefundStatus.SUCCEEDED

    looked_up = await gateway.lookup_refund(
        RefundLookupCall(
            gateway="mock", payment_id=auth.payment_id, provider_payment_id=None, refund_id="ref_b"
        )
    )
    assert looked_up == second
    missing = await gateway.lookup_refund(
        RefundLookupCall(
            gateway="mock", payment_id=auth.payment_id, provider_payment_id=None, refund_id="ref_x"
        )
    )
    assert (
        missing.status == RefundStatus.FAILED
        and missing.failure
        and missing.failure.code == "refund_not_found"
    )


async def test_refund_id_names_one_refund_across_keys(gateway: MockGateway, unique: str) -> None:
    auth = authorize_call(unique)
    await gateway.authorize(auth)
    first = await gateway.refund(refund_call(auth, "ref_1", 2000))
    other_key = refund_call(auth, "ref_1", 2000).model_copy(update={"idempotency_key": "another"})
    assert await gateway.refund(other_key) == first
    assert (await gateway.refund(refund_call(auth, "ref_2", 3000))).status == RefundStatus.SUCCEEDED


async def test_refund_needs_a_capture_and_the_same_currency(gateway: MockGateway, unique: str) -> None:
    auth = authorize_call(unique, capture=False)
    await gateway.authorize(auth)
    with pytest.raises(GatewayInvalidRequest) as err:
        await gateway.refund(refund_call(auth, "ref_1", 100))
    assert err.value.code == "charge_not_captured"
    await gateway.capture(capture_call(auth, 5000))
    wrong = refund_call(auth, "ref_1", 100).model_copy(update={"amount": Amount(minor=100, currency="EUR")})
    with pytest.raises(GatewayInvalidRequest) as err:
        await gateway.refund(wrong)
    assert err.value.code == "currency_mismatch"


async def test_cancel_voids_an_authorization_and_answers_a_capture_with_its_state(
    gateway: MockGateway, unique: str
) -> None:
    held = authorize_call(unique, capture=False)
    await gateway.authorize(held)
    cancel = CancelCall(
        gateway="mock",
        payment_id=held.payment_id,
        provider_payment_id=None,
        reason="requested_by_customer",
        idempotency_key=f"payment-{held.payment_id}:cancel",
    )
    voided = await gateway.cancel(cancel)
    assert (voided.status, voided.authorized_minor) == (GatewayPaymentStatus.CANCELLED, None)
    assert (await gateway.lookup(lookup_call(held))).status == GatewayPaymentStatus.CANCELLED
    with pytest.raises(GatewayInvalidRequest):
        await gateway.capture(capture_call(held, 5000))

    sold = authorize_call(unique + "s")
    await gateway.authorize(sold)
    late = await gateway.cancel(
        cancel.model_copy(update={"payment_id": sold.payment_id, "idempotency_key": "k2"})
    )
    assert (late.status, late.captured_minor) == (GatewayPaymentStatus.SUCCEEDED, sold.amount.minor)
    assert (await gateway.lookup(lookup_call(sold))).status == GatewayPaymentStatus.SUCCEEDED


async def test_unknown_payment(gateway: MockGateway, unique: str) -> None:
    auth = authorize_call(unique)
    assert (await gateway.lookup(lookup_call(auth))).status == GatewayPaymentStatus.NOT_FOUND
    cancel = CancelCall(
        gateway="mock",
        payment_id=auth.payment_id,
        provider_payment_id=None,
        reason="abandoned",
        idempotency_key="k",
    )
    assert (await gateway.cancel(cancel)).status == GatewayPaymentStatus.NOT_FOUND
    with pytest.raises(GatewayInvalidRequest) as err:
        await gateway.capture(capture_call(auth, 100))
    assert err.value.code == "resource_missing"


async def test_lookup_by_provider_id(gateway: MockGateway, unique: str) -> None:
    auth = authorize_call(unique)
    result = await gateway.authorize(auth)
    by_provider = lookup_call(auth).model_copy(
        update={"payment_id": "pay_other", "provider_payment_id": result.provider_payment_id}
    )
    assert (await gateway.lookup(by_provider)).provider_payment_id == result.provider_payment_id


# -- customers and saved payment methods ----------------------------------------------------------


async def test_saved_payment_methods(gateway: MockGateway, unique: str) -> None:
    customer = await gateway.create_customer(email="a@example.com", name="A", idempotency_key=f"cus-{unique}")
    assert customer == await gateway.create_customer(
        email="a@example.com", name="A", idempotency_key=f"cus-{unique}"
    )
    visa = await gateway.attach_payment_method(customer_id=customer.id, payment_method="tok_visa")
    declined = await gateway.attach_payment_method(
        customer_id=customer.id, payment_method="tok_chargeDeclined"
    )
    assert (visa.brand, visa.last4) == ("visa", "4242")
    assert await gateway.list_payment_methods(customer_id=customer.id) == [visa, declined]

    # A saved method behaves like the token it was attached with.
    auth = authorize_call(unique, visa.id)
    assert (await gateway.authorize(auth)).status == GatewayPaymentStatus.SUCCEEDED
    assert (
        await gateway.authorize(authorize_call(unique + "d", declined.id))
    ).status == GatewayPaymentStatus.DECLINED

    assert await gateway.detach_payment_method(payment_method=visa.id) == visa
    assert await gateway.list_payment_methods(customer_id=customer.id) == [declined]
    # A retry of the earlier charge still gets its answer; a new charge cannot use the method.
    assert (await gateway.authorize(auth)).status == GatewayPaymentStatus.SUCCEEDED
    with pytest.raises(GatewayInvalidRequest):
        await gateway.authorize(authorize_call(unique + "x", visa.id))
    with pytest.raises(GatewayInvalidRequest):
        await gateway.attach_payment_method(customer_id="cus_nobody", payment_method="tok_visa")
    with pytest.raises(GatewayInvalidRequest):
        await gateway.attach_payment_method(customer_id=customer.id, payment_method="tok_bogus")


# -- webhooks -------------------------------------------------------------------------------------


def test_webhook_round_trip_normalizes_the_event(gateway: MockGateway) -> None:
    event = MockWebhook(
        type="refund.succeeded",
        payment_id="pay_1",
        provider_payment_id="pi_1",
        amount_minor=1250,
        currency="eur",
        refund_id="ref_1",
        provider_refund_id="re_1",
        created=1_700_000_000,
    )
    headers, body = gateway.build_webhook(event)
    assert json.loads(body)["data"]["amount_minor"] == 1250
    [parsed] = gateway.parse_webhook({k.lower(): v for k, v in headers.items()}, body)  # any header case
    assert parsed.kind == GatewayEventKind.REFUND_SUCCEEDED and parsed.provider_type == "refund.succeeded"
    assert parsed.gateway == "mock" and parsed.event_id.startswith("evt_mock_")
    assert (parsed.payment_id, parsed.provider_payment_id) == ("pay_1", "pi_1")
    assert (parsed.refund_id, parsed.provider_refund_id) == ("ref_1", "re_1")
    assert parsed.amount == Amount(minor=1250, currency="EUR")
    assert parsed.occurred_at is not None and int(parsed.occurred_at.timestamp()) == 1_700_000_000
    # The same event delivered again has the same id, so the workflow can drop it.
    assert gateway.parse_webhook(*gateway.build_webhook(event))[0].event_id == parsed.event_id


def test_webhook_body_and_header_layout(gateway: MockGateway) -> None:
    headers, body = gateway.build_webhook(MockWebhook(type="payment.succeeded", id="evt_1"), timestamp=1234)
    t, v1 = headers["Mock-Signature"].split(",")
    assert t == "t=1234"
    assert v1 == "v1=" + hmac_sha256_hex(SECRET, b"1234." + body)
    assert json.loads(body)["id"] == "evt_1"


def test_webhook_failure_and_dispute_fields(gateway: MockGateway) -> None:
    failed = MockWebhook(
        type="payment.failed", payment_id="p", failure_code="card_declined", decline_code="fraudulent"
    )
    [event] = gateway.parse_webhook(*gateway.build_webhook(failed))
    assert event.failure is not None
    assert (event.failure.code, event.failure.decline_code) == ("card_declined", "fraudulent")
    dispute = MockWebhook(
        type="dispute.opened",
        provider_payment_id="pi",
        dispute_id="dp_1",
        dispute_status="needs_response",
        dispute_reason="fraudulent",
    )
    [event] = gateway.parse_webhook(*gateway.build_webhook(dispute))
    assert event.kind == GatewayEventKind.DISPUTE_OPENED
    assert (event.dispute_id, event.dispute_status, event.dispute_reason) == (
        "dp_1",
        "needs_response",
        "fraudulent",
    )


@pytest.mark.parametrize("event_type", ["charge.captured", "unknown", "payment"])
def test_unknown_event_types_are_kept_as_unknown(gateway: MockGateway, event_type: str) -> None:
    [event] = gateway.parse_webhook(*gateway.build_webhook(MockWebhook(type=event_type, payment_id="p")))
    assert event.kind == GatewayEventKind.UNKNOWN and event.provider_type == event_type


def test_webhook_for_unknown_payment_is_refused(gateway: MockGateway) -> None:
    with pytest.raises(GatewayInvalidRequest):
        gateway.webhook_for("pay_nope", GatewayEventKind.PAYMENT_SUCCEEDED)


async def test_webhook_for_fills_refund_fields(gateway: MockGateway, unique: str) -> None:
    auth = authorize_call(unique)
    await gateway.authorize(auth)
    refund = await gateway.refund(refund_call(auth, "ref_1", 700))
    event = gateway.webhook_for(auth.payment_id, GatewayEventKind.REFUND_SUCCEEDED, refund_id="ref_1")
    assert (event.provider_refund_id, event.amount_minor) == (refund.provider_refund_id, 700)


def test_bad_signature_is_refused(gateway: MockGateway) -> None:
    headers, body = gateway.build_webhook(MockWebhook(type="payment.succeeded", payment_id="p"))
    with pytest.raises(WebhookVerificationError):
        gateway.parse_webhook(headers, body.replace(b'"p"', b'"q"'))  # tampered body
    other = build(MockSettings(webhook_secret=SecretStr("whsec_someone_else")))
    with pytest.raises(WebhookVerificationError):
        other.parse_webhook(headers, body)


@pytest.mark.parametrize("age", [301, -301])
def test_stale_or_future_timestamp_is_refused(gateway: MockGateway, age: int) -> None:
    headers, body = gateway.build_webhook(
        MockWebhook(type="payment.succeeded"), timestamp=int(time.time()) - age
    )
    with pytest.raises(WebhookVerificationError, match="tolerance"):
        gateway.parse_webhook(headers, body)


def test_timestamp_inside_tolerance_is_accepted(gateway: MockGateway) -> None:
    headers, body = gateway.build_webhook(
        MockWebhook(type="payment.succeeded"), timestamp=int(time.time()) - 290
    )
    assert gateway.parse_webhook(headers, body)


@pytest.mark.parametrize(
    "header",
    [None, "", "t=123", "v1=abc", "t=abc,v1=abc", "t=²,v1=abc", "garbage", "t=1,v0=abc"],
)
def test_malformed_signature_header_is_refused(gateway: MockGateway, header: str | None) -> None:
    _, body = gateway.build_webhook(MockWebhook(type="payment.succeeded"))
    headers = {} if header is None else {"Mock-Signature": header}
    with pytest.raises(WebhookVerificationError):
        gateway.parse_webhook(headers, body)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"id": "evt", "type": "payment.succeeded"}',
        b'{"id": 1, "type": "payment.succeeded", "created": 1, "data": {}}',
        b'{"id": "e", "type": "payment.succeeded", "created": 1, "data": {"amount_minor": 1, "currency": "XXX"}}',
    ],
)
def test_signed_but_malformed_body_is_refused(gateway: MockGateway, body: bytes) -> None:
    t = int(time.time())
    headers = {"Mock-Signature": f"t={t},v1={hmac_sha256_hex(SECRET, f'{t}.'.encode() + body)}"}
    with pytest.raises(WebhookVerificationError, match="malformed"):
        gateway.parse_webhook(headers, body)


def test_rotated_secrets() -> None:
    event = MockWebhook(type="payment.succeeded", payment_id="p")
    old_receiver = build(MockSettings(webhook_secret=SecretStr(OLD_SECRET)))
    rotating_receiver = build(
        MockSettings(webhook_secret=SecretStr(SECRET), previous_webhook_secrets=[SecretStr(OLD_SECRET)])
    )
    new_receiver = build(MockSettings(webhook_secret=SecretStr(SECRET)))

    # While rolling, the sender signs with both secrets: receivers on either one accept.
    both = old_receiver.build_webhook(event, secrets=[SECRET, OLD_SECRET])
    assert old_receiver.parse_webhook(*both) and new_receiver.parse_webhook(*both)
    assert both[0]["Mock-Signature"].count("v1=") == 2

    # A receiver that already moved on still accepts the old secret while it is listed as previous...
    signed_old = old_receiver.build_webhook(event)
    assert rotating_receiver.parse_webhook(*signed_old)
    # ...and not once it is dropped.
    with pytest.raises(WebhookVerificationError):
        new_receiver.parse_webhook(*signed_old)


def test_no_secret_configured_is_a_config_error() -> None:
    bare = build(MockSettings())
    with pytest.raises(GatewayConfigError):
        bare.build_webhook(MockWebhook(type="payment.succeeded"))
    with pytest.raises(GatewayConfigError):
        bare.parse_webhook({"Mock-Signature": "t=1,v1=00"}, b"{}")


def test_secrets_stay_out_of_reprs() -> None:
    settings = MockSettings(
        webhook_secret=SecretStr(SECRET), previous_webhook_secrets=[SecretStr(OLD_SECRET)]
    )
    assert SECRET not in repr(settings) and OLD_SECRET not in repr(settings)
    assert SECRET not in str(settings.model_dump())


async def test_send_webhook_posts_a_verifiable_notification(gateway: MockGateway, unique: str) -> None:
    """Through a real socket to a receiver that verifies the raw bytes, as api/webhooks does."""
    received = []

    async def receive(request: web.Request) -> web.Response:
        try:
            received.extend(gateway.parse_webhook(request.headers, await request.read()))
        except WebhookVerificationError as exc:
            return web.Response(status=400, text=str(exc))
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/webhooks/mock", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        auth = authorize_call(unique, "tok_async_webhook")
        await gateway.authorize(auth)
        event = gateway.settle(auth.payment_id)
        sender = build(
            gateway.settings.model_copy(update={"webhook_url": f"http://127.0.0.1:{port}/webhooks/mock"})
        )
        response = await sender.send_webhook(event)
        assert response.status_code == 200, response.text
        assert [e.kind for e in received] == [GatewayEventKind.PAYMENT_SUCCEEDED]
        assert received[0].payment_id == auth.payment_id

        impostor = build(MockSettings(webhook_secret=SecretStr("whsec_wrong")))
        response = await impostor.send_webhook(event, url=f"http://127.0.0.1:{port}/webhooks/mock")
        assert response.status_code == 400
    finally:
        await runner.cleanup()
    with pytest.raises(GatewayConfigError):
        await gateway.send_webhook(event)  # no webhook_url configured


def test_settings_validation() -> None:
    with pytest.raises(ValueError):
        MockSettings(currencies=["USD", "XXX"])
    with pytest.raises(ValueError):
        MockSettings(methods=["bank_transfer"])
    with pytest.raises(ValueError):
        MockSettings(unknown_key=1)
    assert MockSettings(currencies=["usd"]).currencies == ["USD"]
