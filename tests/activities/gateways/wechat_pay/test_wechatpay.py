"""WeChat Pay adapter against the fake WeChat Pay: orders per flow, query, close, refunds, faults."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import aclosing
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import parse_qs, urlparse

import pytest
import pytest_asyncio

from activities.gateways.base import (
    GatewayConfigError,
    GatewayInvalidRequest,
    GatewayOutcomeUnknown,
    GatewayRateLimited,
    GatewayTransientError,
    NotSupported,
)
from activities.gateways.signing import line_message, rsa_sha256_verify
from activities.gateways.wechat_pay.adapter import WechatPayGateway
from activities.gateways.wechat_pay.fake import FakeWechatPay
from activities.gateways.wechat_pay.transform import (
    out_refund_no_for,
    out_trade_no_for,
    refund_id_from,
    wechat_time,
)
from tests.activities.gateways.helpers import QUICK_HTTP, WECHAT_PAY, paid, pid, serving
from workflows.domain import NextActionType, RefundStatus, WalletMethod
from workflows.gateway_io import GatewayPaymentStatus
from workflows.money import Amount

fake = serving(FakeWechatPay)


@pytest_asyncio.fixture
async def gateway(fake: FakeWechatPay) -> AsyncIterator[WechatPayGateway]:
    async with aclosing(WechatPayGateway(fake.settings(http=QUICK_HTTP))) as gw:
        yield gw


# -------------------------------------------------------------------- authorize, per flow


async def test_native_order_returns_qr_code_and_sends_fen_and_expiry(fake, gateway, unique):
    expires = datetime(2030, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    result = await gateway.authorize(WECHAT_PAY.authorize(pid(unique), expires_at=expires, description="Tea"))

    assert result.status is GatewayPaymentStatus.REQUIRES_ACTION
    trade = fake.trades[pid(unique)]
    assert result.next_action.type is NextActionType.DISPLAY_QR_CODE
    assert result.next_action.qr_code == trade.artifact["code_url"]
    assert result.next_action.expires_at == expires
    assert trade.total == 8888 and trade.currency == "CNY" and trade.trade_type == "native"
    assert trade.request["time_expire"] == "2030-01-02T11:04:05+08:00"
    assert trade.request["description"] == "Tea"
    assert trade.request["notify_url"] == "https://merchant.example/webhooks/wechat_pay"


async def test_retried_create_repeats_the_same_order(fake, gateway, unique):
    call = WECHAT_PAY.authorize(pid(unique))
    first = await gateway.authorize(call)
    second = await gateway.authorize(call)
    assert first.next_action.qr_code == second.next_action.qr_code
    assert len(fake.trades) == 1


async def test_jsapi_order_returns_signed_client_parameters(fake, gateway, unique):
    payer = WalletMethod(wallet="wechat_pay", flow="jsapi", payer_id="oUpF8uMuAJO_M2pxb1Q9zNjWeS6o")
    result = await gateway.authorize(WECHAT_PAY.authorize(pid(unique), method=payer))

    action = result.next_action
    assert action.type is NextActionType.USE_SDK
    data = action.data
    prepay_id = fake.trades[pid(unique)].artifact["prepay_id"]
    assert data["package"] == f"prepay_id={prepay_id}"
    assert data["appId"] == fake.appid and data["signType"] == "RSA"
    message = line_message(data["appId"], data["timeStamp"], data["nonceStr"], data["package"])
    assert rsa_sha256_verify(fake.merchant_public_key, message, data["paySign"])
    assert fake.trades[pid(unique)].request["payer"] == {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"}


async def test_jsapi_without_openid_is_refused_before_calling(fake, gateway, unique):
    with pytest.raises(GatewayInvalidRequest, match="openid"):
        await gateway.authorize(WECHAT_PAY.authorize(pid(unique), "jsapi"))
    assert fake.requests == []


async def test_app_order_returns_signed_sdk_parameters(fake, gateway, unique):
    result = await gateway.authorize(WECHAT_PAY.authorize(pid(unique), "app"))

    data = result.next_action.data
    assert result.next_action.type is NextActionType.USE_SDK
    assert data["partnerid"] == fake.mchid and data["package"] == "Sign=WXPay"
    assert data["prepayid"] == fake.trades[pid(unique)].artifact["prepay_id"]
    message = line_message(data["appid"], data["timestamp"], data["noncestr"], data["prepayid"])
    assert rsa_sha256_verify(fake.merchant_public_key, message, data["sign"])


async def test_h5_order_redirects_and_carries_the_return_url(fake, gateway, unique):
    result = await gateway.authorize(
        WECHAT_PAY.authorize(
            pid(unique), "h5", customer_ip="203.0.113.9", return_url="https://shop.example/back?o=1"
        )
    )
    action = result.next_action
    assert action.type is NextActionType.REDIRECT_TO_URL
    assert action.url.startswith(fake.trades[pid(unique)].artifact["h5_url"])
    assert parse_qs(urlparse(action.url).query)["redirect_url"] == ["https://shop.example/back?o=1"]
    assert fake.trades[pid(unique)].request["scene_info"] == {
        "payer_client_ip": "203.0.113.9",
        "h5_info": {"type": "Wap"},
    }


async def test_h5_needs_the_customer_ip(gateway, unique):
    with pytest.raises(GatewayInvalidRequest, match="IP"):
        await gateway.authorize(WECHAT_PAY.authorize(pid(unique), "h5"))


async def test_manual_capture_and_other_currencies_and_wallets_are_refused(gateway, unique):
    with pytest.raises(NotSupported):
        await gateway.authorize(WECHAT_PAY.authorize(pid(unique), capture=False))
    call = WECHAT_PAY.authorize(pid(unique)).model_copy(update={"amount": Amount(minor=100, currency="USD")})
    with pytest.raises(GatewayInvalidRequest, match="CNY"):
        await gateway.authorize(call)
    call = WECHAT_PAY.authorize(pid(unique)).model_copy(update={"method": WalletMethod(wallet="alipay")})
    with pytest.raises(GatewayInvalidRequest):
        await gateway.authorize(call)
    call = WECHAT_PAY.authorize(pid(unique)).model_copy(
        update={"method": WalletMethod(wallet="wechat_pay", flow="page")}
    )
    with pytest.raises(GatewayInvalidRequest, match="page"):
        await gateway.authorize(call)


def test_profile_says_wallet_only_cny_and_no_manual_capture(fake):
    profile = WechatPayGateway(fake.settings(api_base="http://127.0.0.1:9")).profile
    assert profile.id == "wechat_pay"
    assert profile.methods == ["wallet:wechat_pay"]
    assert profile.currencies == ["CNY"]
    assert not profile.supports_manual_capture and not profile.supports_partial_capture


async def test_create_after_the_trade_was_paid_reports_the_payment(fake, gateway, unique):
    """A create retried after its answer was lost and the customer paid: the query tells."""
    call = WECHAT_PAY.authorize(pid(unique))
    await gateway.authorize(call)
    fake.pay(pid(unique))
    result = await gateway.authorize(call)
    assert result.status is GatewayPaymentStatus.SUCCEEDED
    assert result.captured_minor == 8888


async def test_create_with_other_parameters_under_the_same_number_is_rejected(gateway, unique):
    await gateway.authorize(WECHAT_PAY.authorize(pid(unique)))
    with pytest.raises(GatewayInvalidRequest, match="INVALID_REQUEST"):
        await gateway.authorize(WECHAT_PAY.authorize(pid(unique), minor=1))


async def test_bad_merchant_key_is_a_configuration_error(fake, unique):
    other = FakeWechatPay(merchant_key_slot="another-merchant")
    async with aclosing(WechatPayGateway(fake.settings(private_key=other.merchant_private_key))) as gw:
        with pytest.raises(GatewayConfigError, match="SIGN_ERROR"):
            await gw.authorize(WECHAT_PAY.authorize(pid(unique)))


def test_ids_that_do_not_fit_wechat_business_numbers_are_refused():
    with pytest.raises(GatewayInvalidRequest, match="out_trade_no"):
        out_trade_no_for("pay_" + "x" * 40)
    with pytest.raises(GatewayInvalidRequest, match="out_trade_no"):
        out_trade_no_for("pay_ü1234")
    with pytest.raises(GatewayInvalidRequest, match="out_refund_no"):
        out_refund_no_for("pay_" + "x" * 26, "re_" + "y" * 40)
    assert out_refund_no_for("pay_abc123", "re_1") == "pay_abc123-re_1"
    assert refund_id_from("pay_abc123", out_refund_no_for("pay_abc123", "ref_1")) == "ref_1"
    assert refund_id_from("pay_abc123", "other-ref_1") is None


def test_wechat_time_is_beijing_time_with_offset():
    assert wechat_time(datetime(2026, 1, 1, 0, 0, 30, 999, tzinfo=UTC)) == "2026-01-01T08:00:30+08:00"


# -------------------------------------------------------------------- lookup, capture, cancel


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("NOTPAY", GatewayPaymentStatus.REQUIRES_ACTION),
        ("USERPAYING", GatewayPaymentStatus.PROCESSING),
        ("CLOSED", GatewayPaymentStatus.CANCELLED),
        ("REVOKED", GatewayPaymentStatus.CANCELLED),
        ("PAYERROR", GatewayPaymentStatus.DECLINED),
    ],
)
async def test_lookup_maps_unpaid_trade_states(fake, gateway, unique, state, expected):
    await gateway.authorize(WECHAT_PAY.authorize(pid(unique)))
    fake.set_trade_state(pid(unique), state)
    result = await gateway.lookup(WECHAT_PAY.lookup(pid(unique)))
    assert result.status is expected
    assert result.provider_response["trade_state"] == state
    if expected is GatewayPaymentStatus.DECLINED:
        assert result.failure.decline_code == "PAYERROR"


async def test_lookup_of_a_paid_trade(fake, gateway, unique):
    await gateway.authorize(WECHAT_PAY.authorize(pid(unique)))
    trade = fake.pay(pid(unique))
    result = await gateway.lookup(WECHAT_PAY.lookup(pid(unique)))
    assert result.status is GatewayPaymentStatus.SUCCEEDED
    assert result.provider_payment_id == trade.transaction_id
    assert result.captured_minor == result.authorized_minor == 8888


async def test_lookup_of_an_unknown_trade_is_not_found(gateway, unique):
    result = await gateway.lookup(WECHAT_PAY.lookup(pid(unique)))
    assert result.status is GatewayPaymentStatus.NOT_FOUND


async def test_unpaid_trade_past_time_expire_is_closed(fake, gateway, unique):
    await gateway.authorize(
        WECHAT_PAY.authorize(pid(unique), expires_at=datetime.now(UTC) + timedelta(seconds=1))
    )
    fake.trades[pid(unique)].time_expire = datetime.now(UTC) - timedelta(seconds=1)
    assert (await gateway.lookup(WECHAT_PAY.lookup(pid(unique)))).status is GatewayPaymentStatus.CANCELLED


async def test_capture_of_a_paid_trade_is_a_no_op_and_of_an_unpaid_one_not_supported(fake, gateway, unique):
    await gateway.authorize(WECHAT_PAY.authorize(pid(unique)))
    capture = WECHAT_PAY.capture(pid(unique))
    with pytest.raises(NotSupported):
        await gateway.capture(capture)
    fake.pay(pid(unique))
    calls_before = len(fake.requests)
    result = await gateway.capture(capture)
    assert result.status is GatewayPaymentStatus.SUCCEEDED
    assert [m for m, _ in fake.requests[calls_before:]] == ["GET"]  # a query, nothing moved


async def test_cancel_closes_the_trade(fake, gateway, unique):
    await gateway.authorize(WECHAT_PAY.authorize(pid(unique)))
    result = await gateway.cancel(WECHAT_PAY.cancel(pid(unique)))
    assert result.status is GatewayPaymentStatus.CANCELLED
    assert fake.trades[pid(unique)].trade_state == "CLOSED"
    # Closing again (a retried activity) is still cancelled.
    assert (await gateway.cancel(WECHAT_PAY.cancel(pid(unique)))).status is GatewayPaymentStatus.CANCELLED


async def test_cancel_of_a_paid_trade_reports_the_payment(fake, gateway, unique):
    await gateway.authorize(WECHAT_PAY.authorize(pid(unique)))
    fake.pay(pid(unique))
    result = await gateway.cancel(WECHAT_PAY.cancel(pid(unique)))
    assert result.status is GatewayPaymentStatus.SUCCEEDED


async def test_cancel_of_a_never_created_trade_is_cancelled(gateway, unique):
    assert (await gateway.cancel(WECHAT_PAY.cancel(pid(unique)))).status is GatewayPaymentStatus.CANCELLED


async def test_cancel_while_the_payer_is_paying_is_retried(fake, gateway, unique):
    await gateway.authorize(WECHAT_PAY.authorize(pid(unique)))
    fake.set_trade_state(pid(unique), "USERPAYING")
    with pytest.raises(GatewayTransientError, match="paying"):
        await gateway.cancel(WECHAT_PAY.cancel(pid(unique)))


# -------------------------------------------------------------------- refunds


async def test_partial_refunds_then_lookup(fake, gateway, unique):
    await paid(fake, gateway, WECHAT_PAY, pid(unique), minor=10000)
    first = await gateway.refund(WECHAT_PAY.refund(pid(unique), "ref_a", 3000))
    second = await gateway.refund(WECHAT_PAY.refund(pid(unique), "ref_b", 2000))

    assert first.status is second.status is RefundStatus.SUCCEEDED
    assert first.provider_refund_id != second.provider_refund_id
    sent = fake.refunds[f"{pid(unique)}-ref_a"]
    assert (sent.amount, sent.total) == (3000, 10000)
    assert fake.trades[pid(unique)].refunded == 5000

    looked = await gateway.lookup_refund(WECHAT_PAY.refund_lookup(pid(unique), "ref_b"))
    assert looked.status is RefundStatus.SUCCEEDED and looked.provider_refund_id == second.provider_refund_id
    # The trade stays paid (state REFUND) for the workflow.
    assert (
        await gateway.lookup(WECHAT_PAY.lookup(pid(unique), minor=10000))
    ).status is GatewayPaymentStatus.SUCCEEDED


async def test_retried_refund_is_the_same_refund(fake, gateway, unique):
    await paid(fake, gateway, WECHAT_PAY, pid(unique))
    first = await gateway.refund(WECHAT_PAY.refund(pid(unique), "ref_a", 3000))
    again = await gateway.refund(WECHAT_PAY.refund(pid(unique), "ref_a", 3000))
    assert again.provider_refund_id == first.provider_refund_id
    assert fake.trades[pid(unique)].refunded == 3000


async def test_processing_refund_is_pending_until_wechat_settles_it(fake, gateway, unique):
    await paid(fake, gateway, WECHAT_PAY, pid(unique))
    fake.refund_outcome = "PROCESSING"
    assert (await gateway.refund(WECHAT_PAY.refund(pid(unique), "ref_a", 100))).status is RefundStatus.PENDING
    lookup = WECHAT_PAY.refund_lookup(pid(unique), "ref_a")
    fake.settle_refund(f"{pid(unique)}-ref_a", "ABNORMAL")
    result = await gateway.lookup_refund(lookup)
    assert result.status is RefundStatus.FAILED and result.failure.decline_code == "ABNORMAL"


async def test_refund_over_what_is_left_fails(fake, gateway, unique):
    await paid(fake, gateway, WECHAT_PAY, pid(unique), minor=1000)
    await gateway.refund(WECHAT_PAY.refund(pid(unique), "ref_a", 800))
    result = await gateway.refund(WECHAT_PAY.refund(pid(unique), "ref_b", 300))
    assert result.status is RefundStatus.FAILED
    assert result.failure.decline_code == "INVALID_REQUEST"


async def test_refund_of_an_unknown_payment_or_refund_fails(gateway, unique):
    assert (await gateway.refund(WECHAT_PAY.refund(pid(unique), "ref_a", 100))).status is RefundStatus.FAILED
    lookup = WECHAT_PAY.refund_lookup(pid(unique), "ref_a")
    assert (await gateway.lookup_refund(lookup)).status is RefundStatus.FAILED


# -------------------------------------------------------------------- faults


async def test_5xx_on_create_is_an_unknown_outcome_and_the_retry_finds_one_order(fake, gateway, unique):
    fake.faults.fail_next(500, match="create")
    with pytest.raises(GatewayOutcomeUnknown):
        await gateway.authorize(WECHAT_PAY.authorize(pid(unique)))
    result = await gateway.authorize(WECHAT_PAY.authorize(pid(unique)))
    assert result.status is GatewayPaymentStatus.REQUIRES_ACTION and len(fake.trades) == 1


async def test_429_is_rate_limited_with_retry_after(fake, gateway, unique):
    fake.faults.rate_limit_next(retry_after="7", match="query")
    with pytest.raises(GatewayRateLimited) as info:
        await gateway.lookup(WECHAT_PAY.lookup(pid(unique)))
    assert info.value.retry_after == 7.0


async def test_dropped_answer_after_the_order_was_created(fake, gateway, unique):
    fake.faults.drop_next(match="create")
    with pytest.raises(GatewayOutcomeUnknown):
        await gateway.authorize(WECHAT_PAY.authorize(pid(unique)))
    assert pid(unique) in fake.trades  # it happened at WeChat
    assert (
        await gateway.lookup(WECHAT_PAY.lookup(pid(unique)))
    ).status is GatewayPaymentStatus.REQUIRES_ACTION
    result = await gateway.authorize(WECHAT_PAY.authorize(pid(unique)))
    assert result.next_action.qr_code == fake.trades[pid(unique)].artifact["code_url"]


async def test_slow_answer_past_the_timeout_is_an_unknown_outcome(fake, gateway, unique):
    await paid(fake, gateway, WECHAT_PAY, pid(unique))
    fake.faults.delay_next(1.5, match="refund")
    with pytest.raises(GatewayOutcomeUnknown):
        await gateway.refund(WECHAT_PAY.refund(pid(unique), "ref_a", 100))
    lookup = WECHAT_PAY.refund_lookup(pid(unique), "ref_a")
    assert (await gateway.lookup_refund(lookup)).status is RefundStatus.SUCCEEDED


async def test_connection_refused_is_transient(fake, unique):
    async with aclosing(WechatPayGateway(fake.settings(api_base="http://127.0.0.1:9"))) as gw:
        with pytest.raises(GatewayTransientError) as info:
            await gw.lookup(WECHAT_PAY.lookup(pid(unique)))
        assert not isinstance(info.value, GatewayOutcomeUnknown)


async def test_forged_response_signature_is_not_trusted(fake, gateway, unique):
    await gateway.authorize(WECHAT_PAY.authorize(pid(unique)))
    fake.break_response_signatures = True
    with pytest.raises(GatewayTransientError, match="signature"):
        await gateway.lookup(WECHAT_PAY.lookup(pid(unique)))
    with pytest.raises(GatewayOutcomeUnknown, match="signature"):
        await gateway.authorize(WECHAT_PAY.authorize(pid(unique)))


async def test_request_carries_a_verifiable_signature_over_path_query_and_body(fake, gateway):
    auth = gateway.authorization(
        "GET", "/v3/x?mchid=1", "", timestamp=1554208460, nonce="593BEC0C930BF1AFEB40B4A08C8FB242"
    )
    assert auth.startswith(
        'WECHATPAY2-SHA256-RSA2048 mchid="1900009191",nonce_str="593BEC0C930BF1AFEB40B4A08C8FB242",'
    )
    signature = auth.split('signature="')[1].split('"')[0]
    assert rsa_sha256_verify(
        fake.merchant_public_key,
        "GET\n/v3/x?mchid=1\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n\n",
        signature,
    )
    assert f'serial_no="{fake.merchant_serial_no}"' in auth


async def test_body_is_sent_exactly_as_signed(fake, gateway, unique):
    """Chinese text goes out as UTF-8, not \\u escapes, and the fake verified the same bytes."""
    await gateway.authorize(WECHAT_PAY.authorize(pid(unique), description="龙井茶"))
    assert fake.trades[pid(unique)].description == "龙井茶"
    assert json.dumps(fake.trades[pid(unique)].request, ensure_ascii=False).count("龙井茶") == 1


async def test_the_fake_refuses_a_currency_other_than_yuan_as_wechat_does(fake, unique):
    async with aclosing(WechatPayGateway(fake.settings(currency="USD", http=QUICK_HTTP))) as usd:
        with pytest.raises(GatewayInvalidRequest):
            await usd.authorize(WECHAT_PAY.authorize(pid(unique), amount=Amount(minor=100, currency="USD")))

    assert pid(unique) not in fake.trades
