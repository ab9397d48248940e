"""AliPay adapter against the fake AliPay gateway: signing, signed answers, trades per flow, query,
close, refunds, faults, settings."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import aclosing
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import parse_qs, parse_qsl, urlsplit

import pytest
import pytest_asyncio
from pydantic import ValidationError

from activities.gateways.alipay.adapter import AlipayGateway, raw_member
from activities.gateways.alipay.fake import FakeAlipay
from activities.gateways.alipay.settings import PRODUCTION_GATEWAY, SANDBOX_GATEWAY, AlipaySettings
from activities.gateways.alipay.transform import alipay_time
from activities.gateways.base import (
    GatewayConfigError,
    GatewayInvalidRequest,
    GatewayOutcomeUnknown,
    GatewayRateLimited,
    GatewayTransientError,
    NotSupported,
)
from activities.gateways.fake_server import keypair
from activities.gateways.signing import rsa_sha256_verify, sorted_params_content
from tests.activities.gateways.helpers import ALIPAY, QUICK_HTTP, paid, pid, serving
from workflows.domain import NextActionType, RefundStatus, WalletMethod
from workflows.gateway_io import GatewayPaymentStatus
from workflows.money import Amount

fake = serving(FakeAlipay)


@pytest_asyncio.fixture
async def gateway(fake: FakeAlipay) -> AsyncIterator[AlipayGateway]:
    async with aclosing(AlipayGateway(fake.settings(http=QUICK_HTTP))) as gw:
        yield gw


# -------------------------------------------------------------------- signing


def test_request_sign_covers_sorted_parameters_including_sign_type(fake):
    gw = AlipayGateway(fake.settings())
    params = gw.signed_params("alipay.trade.query", {"out_trade_no": "pay_1"})
    assert params["sign_type"] == "RSA2" and params["charset"] == "utf-8" and params["version"] == "1.0"
    assert params["biz_content"] == '{"out_trade_no":"pay_1"}'
    datetime.strptime(params["timestamp"], "%Y-%m-%d %H:%M:%S")
    content = sorted_params_content(params, exclude=("sign",))
    assert content.startswith("app_id=2021000000000001&biz_content={")
    assert "&sign_type=RSA2&" in content
    assert rsa_sha256_verify(fake.app_public_key, content, params["sign"])


def test_sorted_params_content_drops_empty_values_and_excluded_keys():
    params = {"b": "2", "a": "1", "sign": "S", "sign_type": "RSA2", "empty": "", "c": "x=y&z"}
    assert sorted_params_content(params, exclude=("sign", "sign_type")) == "a=1&b=2&c=x=y&z"


def test_raw_member_is_the_exact_signed_text():
    text = '{"alipay_trade_query_response" : {"code":"10000","msg":"Success","a":"\\u4e2d"},"sign":"x"}'
    assert raw_member(text, "alipay_trade_query_response") == '{"code":"10000","msg":"Success","a":"\\u4e2d"}'
    # A value that merely contains the key's text is not the member.
    tricky = '{"x":"\\"alipay_trade_query_response\\"","alipay_trade_query_response":{"code":"1"}}'
    assert raw_member(tricky, "alipay_trade_query_response") == '{"code":"1"}'


def test_alipay_time_is_beijing_time():
    assert alipay_time(datetime(2026, 1, 1, 16, 30, 5, tzinfo=UTC)) == "2026-01-02 00:30:05"
    assert alipay_time(datetime(2026, 1, 1, 16, 30, 5)) == "2026-01-02 00:30:05"  # naive is UTC


# -------------------------------------------------------------------- authorize per flow


async def test_precreate_returns_the_qr_code_with_yuan_amount_and_expiry(fake, gateway, unique):
    expires = datetime(2030, 5, 6, 7, 8, 9, tzinfo=UTC)
    result = await gateway.authorize(ALIPAY.authorize(pid(unique), expires_at=expires, description="龙井茶"))

    trade = fake.trades[pid(unique)]
    assert result.status is GatewayPaymentStatus.REQUIRES_ACTION
    assert result.next_action.type is NextActionType.DISPLAY_QR_CODE
    assert result.next_action.qr_code == trade.qr_code
    assert result.next_action.expires_at == expires
    assert trade.biz["total_amount"] == "88.88"
    assert trade.biz["time_expire"] == "2030-05-06 15:08:09"
    assert trade.subject == "龙井茶"


async def test_default_flow_is_the_qr_code(gateway, unique):
    result = await gateway.authorize(ALIPAY.authorize(pid(unique), None))
    assert result.next_action.type is NextActionType.DISPLAY_QR_CODE


async def test_amounts_keep_two_decimals(fake, gateway, unique):
    await gateway.authorize(ALIPAY.authorize(pid(unique), minor=100))
    assert fake.trades[pid(unique)].biz["total_amount"] == "1.00"


async def test_retried_precreate_returns_the_same_trade(fake, gateway, unique):
    first = await gateway.authorize(ALIPAY.authorize(pid(unique)))
    second = await gateway.authorize(ALIPAY.authorize(pid(unique)))
    assert first.next_action.qr_code == second.next_action.qr_code and len(fake.trades) == 1


async def test_precreate_after_the_customer_paid_reports_the_payment(fake, gateway, unique):
    await gateway.authorize(ALIPAY.authorize(pid(unique)))
    fake.pay(pid(unique))
    result = await gateway.authorize(ALIPAY.authorize(pid(unique)))
    assert result.status is GatewayPaymentStatus.SUCCEEDED and result.captured_minor == 8888


async def test_precreate_with_other_parameters_under_the_same_number_is_refused(gateway, unique):
    await gateway.authorize(ALIPAY.authorize(pid(unique)))
    with pytest.raises(GatewayInvalidRequest, match=r"ACQ\.CONTEXT_INCONSISTENT"):
        await gateway.authorize(ALIPAY.authorize(pid(unique), minor=1))


@pytest.mark.parametrize(("flow", "product"), [("page", "FAST_INSTANT_TRADE_PAY"), ("wap", "QUICK_WAP_WAY")])
async def test_page_and_wap_redirect_to_a_signed_gateway_url(fake, gateway, unique, flow, product):
    result = await gateway.authorize(
        ALIPAY.authorize(pid(unique), flow, return_url="https://shop.example/back")
    )

    action = result.next_action
    assert action.type is NextActionType.REDIRECT_TO_URL
    assert action.url.startswith(fake.gateway_url + "?")
    params = dict(parse_qsl(urlsplit(action.url).query))
    assert (
        params["method"] == f"alipay.trade.{flow}.pay" and params["return_url"] == "https://shop.example/back"
    )
    assert json.loads(params["biz_content"])["product_code"] == product
    assert fake.trades == {}  # AliPay creates the trade when the customer opens the page
    # Until then a lookup that knows the flow keeps waiting; without the flow it is "not found".
    assert (
        await gateway.lookup(ALIPAY.lookup(pid(unique), flow))
    ).status is GatewayPaymentStatus.REQUIRES_ACTION
    assert (
        await gateway.lookup(ALIPAY.lookup(pid(unique), method=None))
    ).status is GatewayPaymentStatus.NOT_FOUND

    assert await fake.open(action.url) == 200
    assert fake.trades[pid(unique)].product_code == product
    fake.pay(pid(unique))
    assert (await gateway.lookup(ALIPAY.lookup(pid(unique), flow))).status is GatewayPaymentStatus.SUCCEEDED


async def test_page_uses_the_configured_return_url_by_default(gateway, unique):
    result = await gateway.authorize(ALIPAY.authorize(pid(unique), "page"))
    assert parse_qs(urlsplit(result.next_action.url).query)["return_url"] == ["https://shop.example/paid"]


async def test_app_returns_a_signed_order_string(fake, gateway, unique):
    result = await gateway.authorize(ALIPAY.authorize(pid(unique), "app"))
    action = result.next_action
    assert action.type is NextActionType.USE_SDK
    params = dict(parse_qsl(action.data["order_string"]))
    assert params["method"] == "alipay.trade.app.pay" and "return_url" not in params
    assert rsa_sha256_verify(
        fake.app_public_key, sorted_params_content(params, exclude=("sign",)), params["sign"]
    )
    assert await fake.open(action.data["order_string"]) == 200
    assert pid(unique) in fake.trades


async def test_manual_capture_other_currencies_wallets_and_flows_are_refused(gateway, unique):
    with pytest.raises(NotSupported):
        await gateway.authorize(ALIPAY.authorize(pid(unique), capture=False))
    with pytest.raises(GatewayInvalidRequest, match="CNY"):
        await gateway.authorize(
            ALIPAY.authorize(pid(unique)).model_copy(update={"amount": Amount(minor=1, currency="EUR")})
        )
    with pytest.raises(GatewayInvalidRequest):
        await gateway.authorize(
            ALIPAY.authorize(pid(unique)).model_copy(update={"method": WalletMethod(wallet="wechat_pay")})
        )
    with pytest.raises(GatewayInvalidRequest, match="native"):
        await gateway.authorize(ALIPAY.authorize(pid(unique), "native"))


def test_profile(fake):
    profile = AlipayGateway(fake.settings()).profile
    assert (profile.id, profile.methods, profile.currencies) == ("alipay", ["wallet:alipay"], ["CNY"])
    assert not profile.supports_manual_capture and not profile.supports_partial_capture


async def test_wrong_app_key_is_a_configuration_error(fake, unique):
    other = FakeAlipay(app_key_slot="another-alipay-app")
    async with aclosing(AlipayGateway(fake.settings(app_private_key=other.app_private_key))) as gw:
        with pytest.raises(GatewayConfigError, match=r"isv\.invalid-signature"):
            await gw.lookup(ALIPAY.lookup(pid(unique)))


# -------------------------------------------------------------------- query, capture, close


async def test_lookup_states(fake, gateway, unique):
    assert (await gateway.lookup(ALIPAY.lookup(pid(unique)))).status is GatewayPaymentStatus.NOT_FOUND
    await gateway.authorize(ALIPAY.authorize(pid(unique)))
    assert (await gateway.lookup(ALIPAY.lookup(pid(unique)))).status is GatewayPaymentStatus.REQUIRES_ACTION
    trade = fake.pay(pid(unique))
    paid = await gateway.lookup(ALIPAY.lookup(pid(unique)))
    assert paid.status is GatewayPaymentStatus.SUCCEEDED
    assert paid.provider_payment_id == trade.trade_no and paid.captured_minor == 8888
    fake.trades[pid(unique)].trade_status = "TRADE_FINISHED"
    assert (await gateway.lookup(ALIPAY.lookup(pid(unique)))).status is GatewayPaymentStatus.SUCCEEDED


async def test_expired_unpaid_trade_is_cancelled(fake, gateway, unique):
    await gateway.authorize(ALIPAY.authorize(pid(unique)))
    fake.trades[pid(unique)].time_expire = datetime.now(UTC) - timedelta(seconds=1)
    assert (await gateway.lookup(ALIPAY.lookup(pid(unique)))).status is GatewayPaymentStatus.CANCELLED


async def test_fully_refunded_trade_is_still_paid(fake, gateway, unique):
    await paid(fake, gateway, ALIPAY, pid(unique), minor=500)
    await gateway.refund(ALIPAY.refund(pid(unique), "ref_all", 500))
    assert fake.trades[pid(unique)].trade_status == "TRADE_CLOSED"
    assert (await gateway.lookup(ALIPAY.lookup(pid(unique)))).status is GatewayPaymentStatus.SUCCEEDED


async def test_capture_is_a_no_op_for_a_paid_trade_only(fake, gateway, unique):
    await gateway.authorize(ALIPAY.authorize(pid(unique)))
    capture = ALIPAY.capture(pid(unique))
    with pytest.raises(NotSupported):
        await gateway.capture(capture)
    fake.pay(pid(unique))
    calls = len(fake.calls)
    assert (await gateway.capture(capture)).status is GatewayPaymentStatus.SUCCEEDED
    assert fake.calls[calls:] == ["alipay.trade.query"]


async def test_cancel_closes_and_is_repeatable(fake, gateway, unique):
    await gateway.authorize(ALIPAY.authorize(pid(unique)))
    assert (await gateway.cancel(ALIPAY.cancel(pid(unique)))).status is GatewayPaymentStatus.CANCELLED
    assert fake.trades[pid(unique)].trade_status == "TRADE_CLOSED"
    assert (await gateway.cancel(ALIPAY.cancel(pid(unique)))).status is GatewayPaymentStatus.CANCELLED


async def test_cancel_of_a_paid_trade_reports_the_payment(fake, gateway, unique):
    await gateway.authorize(ALIPAY.authorize(pid(unique)))
    fake.pay(pid(unique))
    assert (await gateway.cancel(ALIPAY.cancel(pid(unique)))).status is GatewayPaymentStatus.SUCCEEDED


async def test_cancel_of_a_page_never_opened_is_cancelled(gateway, unique):
    await gateway.authorize(ALIPAY.authorize(pid(unique), "page"))
    assert (await gateway.cancel(ALIPAY.cancel(pid(unique)))).status is GatewayPaymentStatus.CANCELLED


# -------------------------------------------------------------------- refunds


async def test_several_partial_refunds(fake, gateway, unique):
    await paid(fake, gateway, ALIPAY, pid(unique))
    first = await gateway.refund(ALIPAY.refund(pid(unique), "ref_a", 3000))
    second = await gateway.refund(ALIPAY.refund(pid(unique), "ref_b", 2050))
    assert first.status is second.status is RefundStatus.SUCCEEDED
    trade = fake.trades[pid(unique)]
    assert {k: str(v) for k, v in trade.refunds.items()} == {"ref_a": "30.00", "ref_b": "20.50"}
    assert trade.trade_status == "TRADE_SUCCESS"
    assert (
        await gateway.lookup_refund(ALIPAY.refund_lookup(pid(unique), "ref_b"))
    ).status is RefundStatus.SUCCEEDED


async def test_retried_refund_is_the_same_refund(fake, gateway, unique):
    await paid(fake, gateway, ALIPAY, pid(unique))
    await gateway.refund(ALIPAY.refund(pid(unique), "ref_a", 3000))
    again = await gateway.refund(
        ALIPAY.refund(pid(unique), "ref_a", 3000)
    )  # fund_change N, confirmed by query
    assert again.status is RefundStatus.SUCCEEDED
    assert str(fake.trades[pid(unique)].refunded) == "30.00"


async def test_refund_over_what_is_left_fails_with_alipay_code(fake, gateway, unique):
    await paid(fake, gateway, ALIPAY, pid(unique), minor=1000)
    await gateway.refund(ALIPAY.refund(pid(unique), "ref_a", 900))
    result = await gateway.refund(ALIPAY.refund(pid(unique), "ref_b", 200))
    assert (
        result.status is RefundStatus.FAILED and result.failure.decline_code == "ACQ.REFUND_AMT_RESTRICTION"
    )


async def test_refund_unknown_trade_or_request(gateway, unique):
    assert (
        await gateway.refund(ALIPAY.refund(pid(unique), "ref_a", 100))
    ).failure.decline_code == "ACQ.TRADE_NOT_EXIST"
    assert (
        await gateway.lookup_refund(ALIPAY.refund_lookup(pid(unique), "ref_a"))
    ).status is RefundStatus.FAILED


async def test_a_refund_query_without_a_status_stays_pending_until_the_refund_window_passes(
    fake, gateway, unique
):
    """Issue #17 item 5: AliPay answers no refund_status for a refund "not received, or failed",
    and early queries miss successes: pending (asked again), final only once the window passed."""
    await paid(fake, gateway, ALIPAY, pid(unique))
    just_asked = datetime.now(UTC) - timedelta(seconds=3)
    early = await gateway.lookup_refund(
        ALIPAY.refund_lookup(pid(unique), "ref_none", requested_at=just_asked)
    )
    assert early.status is RefundStatus.PENDING
    unknown_age = await gateway.lookup_refund(ALIPAY.refund_lookup(pid(unique), "ref_none"))
    assert unknown_age.status is RefundStatus.PENDING
    long_ago = datetime.now(UTC) - timedelta(days=2)
    late = await gateway.lookup_refund(ALIPAY.refund_lookup(pid(unique), "ref_none", requested_at=long_ago))
    assert late.status is RefundStatus.FAILED and late.failure.code == "refund_not_found"


# -------------------------------------------------------------------- faults and signatures


async def test_5xx_on_precreate_is_an_unknown_outcome_and_a_retry_finds_one_trade(fake, gateway, unique):
    fake.faults.fail_next(502, match="precreate")
    with pytest.raises(GatewayOutcomeUnknown):
        await gateway.authorize(ALIPAY.authorize(pid(unique)))
    await gateway.authorize(ALIPAY.authorize(pid(unique)))
    assert len(fake.trades) == 1


async def test_503_is_transient_and_429_rate_limited(fake, gateway, unique):
    fake.faults.fail_next(503, match="query")
    with pytest.raises(GatewayTransientError) as info:
        await gateway.lookup(ALIPAY.lookup(pid(unique)))
    assert not isinstance(info.value, GatewayOutcomeUnknown)
    fake.faults.rate_limit_next(retry_after="3")
    with pytest.raises(GatewayRateLimited) as limited:
        await gateway.lookup(ALIPAY.lookup(pid(unique)))
    assert limited.value.retry_after == 3.0


async def test_dropped_answer_after_the_refund_was_made(fake, gateway, unique):
    await paid(fake, gateway, ALIPAY, pid(unique))
    fake.faults.drop_next(match="alipay.trade.refund")
    with pytest.raises(GatewayOutcomeUnknown):
        await gateway.refund(ALIPAY.refund(pid(unique), "ref_a", 100))
    assert "ref_a" in fake.trades[pid(unique)].refunds
    assert (await gateway.refund(ALIPAY.refund(pid(unique), "ref_a", 100))).status is RefundStatus.SUCCEEDED
    assert str(fake.trades[pid(unique)].refunded) == "1.00"


async def test_slow_answer_past_the_timeout_is_an_unknown_outcome(fake, gateway, unique):
    fake.faults.delay_next(1.5, match="precreate")
    with pytest.raises(GatewayOutcomeUnknown):
        await gateway.authorize(ALIPAY.authorize(pid(unique)))
    assert (await gateway.lookup(ALIPAY.lookup(pid(unique)))).status is GatewayPaymentStatus.REQUIRES_ACTION


async def test_a_slow_provider_times_out_as_unknown_outcome(fake, gateway, unique):
    fake.faults.latency = 1.5  # every answer, before the work; the client gives up after 1 s
    try:
        with pytest.raises(GatewayOutcomeUnknown):
            await gateway.lookup(ALIPAY.lookup(pid(unique)))
    finally:
        fake.faults.clear()
    assert (await gateway.lookup(ALIPAY.lookup(pid(unique)))).status is GatewayPaymentStatus.NOT_FOUND


async def test_alipay_system_error_is_retried(fake, gateway, unique, monkeypatch):
    from activities.gateways.alipay import fake as alipay_server

    def system_error(biz):
        raise alipay_server.AlipayError(
            "20000", "Service Currently Unavailable", "isp.unknow-error", "系统繁忙"
        )

    monkeypatch.setattr(fake, "_query", system_error)
    with pytest.raises(GatewayTransientError, match="20000"):
        await gateway.lookup(ALIPAY.lookup(pid(unique)))


async def test_answers_with_a_bad_or_missing_signature_are_not_trusted(fake, gateway, unique):
    await gateway.authorize(ALIPAY.authorize(pid(unique)))
    fake.break_response_signatures = True
    with pytest.raises(GatewayTransientError, match="signature"):
        await gateway.lookup(ALIPAY.lookup(pid(unique)))
    with pytest.raises(GatewayOutcomeUnknown, match="signature"):
        await gateway.cancel(ALIPAY.cancel(pid(unique)))
    fake.break_response_signatures = False
    fake.unsigned_responses = True
    with pytest.raises(GatewayTransientError, match="unsigned"):
        await gateway.lookup(ALIPAY.lookup(pid(unique)))


async def test_connection_refused_is_transient(fake, unique):
    async with aclosing(AlipayGateway(fake.settings(gateway_url="http://127.0.0.1:9/gateway.do"))) as gw:
        with pytest.raises(GatewayTransientError) as info:
            await gw.lookup(ALIPAY.lookup(pid(unique)))
        assert not isinstance(info.value, GatewayOutcomeUnknown)


# -------------------------------------------------------------------- settings


SECRET_INPUT = "s3cr3t-not-a-key"


def settings_values(**overrides):
    values = dict(
        app_id="2021000000000001",
        app_private_key=keypair("alipay-app")[0],
        alipay_public_key=keypair("alipay-platform")[1],
        notify_url="https://merchant.example/webhooks/alipay",
    )
    values.update(overrides)
    return values


def test_gateway_switches_between_production_and_sandbox():
    assert AlipaySettings(**settings_values()).endpoint == PRODUCTION_GATEWAY
    assert AlipaySettings(**settings_values(sandbox=True)).endpoint == SANDBOX_GATEWAY
    assert (
        AlipaySettings(
            **settings_values(sandbox=True, gateway_url="http://127.0.0.1:8080/gateway.do")
        ).endpoint
        == "http://127.0.0.1:8080/gateway.do"
    )


def test_the_gateway_url_must_be_https_except_to_a_loopback_fake():
    """Issue #17 item 8: requests carry our signature and the customer's data, as Stripe's do."""
    with pytest.raises(ValidationError, match="https"):
        AlipaySettings(**settings_values(gateway_url="http://openapi.alipay.com/gateway.do"))


def test_validation_errors_never_show_the_private_key():
    """Issue #17 item 8: pydantic prints the input beside each error: a key of the wrong type, or
    the whole settings mapping for a model-level refusal."""
    for wrong in ([SECRET_INPUT], SECRET_INPUT):
        with pytest.raises(ValidationError) as caught:
            AlipaySettings(**settings_values(app_private_key=wrong, app_id="2"))
        assert "s3cr3t" not in str(caught.value)


def test_keys_from_files_and_bare_base64(tmp_path):
    private_pem, _ = keypair("alipay-app")
    bare = "".join(
        line for line in private_pem.splitlines() if "-----" not in line
    )  # as AliPay's console shows it
    public = tmp_path / "alipay_public_key.pem"
    public.write_text(keypair("alipay-platform")[1])
    settings = AlipaySettings(
        **settings_values(app_private_key=bare, alipay_public_key=None, alipay_public_key_file=public)
    )
    assert settings.alipay_public_key == keypair("alipay-platform")[1]
    assert bare not in repr(settings)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(app_private_key=None), "app_private_key"),
        (dict(alipay_public_key=None), "alipay_public_key"),
        (dict(alipay_public_key="nonsense"), "not an RSA public key"),
        (dict(extra_key="x"), "Extra inputs"),
    ],
)
def test_invalid_settings_fail_at_start(overrides, message):
    with pytest.raises(ValidationError, match=message):
        AlipaySettings(**settings_values(**overrides))


async def test_the_registry_builds_it_from_a_config_section():
    from activities.gateways.registry import GatewayRegistry

    async with GatewayRegistry.from_config(
        {"alipay": settings_values(enabled=True, sandbox=True)}
    ) as registry:
        assert isinstance(registry.get("alipay"), AlipayGateway)
