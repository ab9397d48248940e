"""Opt-in: the WeChat Pay and AliPay adapters against the providers themselves.

AliPay (its sandbox, openapi-sandbox.dl.alipaydev.com):

    ALIPAY_SANDBOX_APP_ID=9021000... ALIPAY_SANDBOX_APP_PRIVATE_KEY_FILE=app_private.pem \\
    ALIPAY_SANDBOX_PUBLIC_KEY_FILE=alipay_public.pem pytest tests/live/test_wechat_alipay_live.py -m live -q

WeChat Pay v3 has no sandbox: these tests use a real merchant account, but only create a 1-fen
Native order nobody scans, query it and close it, so no money can move:

    WECHATPAY_LIVE_MCHID=... WECHATPAY_LIVE_APPID=... WECHATPAY_LIVE_SERIAL_NO=... \\
    WECHATPAY_LIVE_PRIVATE_KEY_FILE=apiclient_key.pem WECHATPAY_LIVE_APIV3_KEY=... \\
    [WECHATPAY_LIVE_PUBLIC_KEY_FILE=pub_key.pem WECHATPAY_LIVE_PUBLIC_KEY_ID=PUB_KEY_ID_...] \\
    pytest tests/live/test_wechat_alipay_live.py -m live -q

Each provider is skipped without its variables. Notifications are not covered (the providers would
need a public URL to deliver to); the fake servers' suites cover their verification and mapping.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import pytest_asyncio

from activities.gateways.alipay.adapter import AlipayGateway
from activities.gateways.alipay.settings import AlipaySettings
from activities.gateways.wechat_pay.adapter import WechatPayGateway
from activities.gateways.wechat_pay.settings import WechatPaySettings
from workflows.domain import NextActionType, RefundStatus, WalletMethod
from workflows.gateway_io import AuthorizeCall, CancelCall, GatewayPaymentStatus, LookupCall, RefundLookupCall
from workflows.money import Amount

pytestmark = pytest.mark.live


def _secret(name: str) -> str:
    """`NAME`, or the content of the file `NAME_FILE` names."""
    if os.environ.get(name):
        return os.environ[name]
    path = os.environ.get(f"{name}_FILE")
    return Path(path).read_text() if path else ""


ALIPAY = {
    "app_id": os.environ.get("ALIPAY_SANDBOX_APP_ID", ""),
    "app_private_key": _secret("ALIPAY_SANDBOX_APP_PRIVATE_KEY"),
    "alipay_public_key": _secret("ALIPAY_SANDBOX_PUBLIC_KEY"),
}
WECHAT = {
    "mchid": os.environ.get("WECHATPAY_LIVE_MCHID", ""),
    "appid": os.environ.get("WECHATPAY_LIVE_APPID", ""),
    "merchant_serial_no": os.environ.get("WECHATPAY_LIVE_SERIAL_NO", ""),
    "private_key": _secret("WECHATPAY_LIVE_PRIVATE_KEY"),
    "apiv3_key": _secret("WECHATPAY_LIVE_APIV3_KEY"),
}
needs_alipay = pytest.mark.skipif(
    not all(ALIPAY.values()), reason="set ALIPAY_SANDBOX_* to run against the AliPay sandbox"
)
needs_wechat = pytest.mark.skipif(
    not all(WECHAT.values()), reason="set WECHATPAY_LIVE_* to run against WeChat Pay"
)


def order(wallet: str, flow: str, minor: int) -> AuthorizeCall:
    payment_id = f"pay_live_{uuid.uuid4().hex[:16]}"
    return AuthorizeCall(
        gateway=wallet,
        payment_id=payment_id,
        order_id=f"order_{payment_id}",
        amount=Amount(minor=minor, currency="CNY"),
        method=WalletMethod(wallet=wallet, flow=flow),
        capture=True,
        description="durapay live test",
        idempotency_key=f"payment-{payment_id}:authorize",
        expires_at=datetime.now(UTC) + timedelta(minutes=10),
    )


def lookup(call: AuthorizeCall) -> LookupCall:
    return LookupCall(
        gateway=call.gateway, payment_id=call.payment_id, amount=call.amount, method=call.method
    )


def cancel(call: AuthorizeCall) -> CancelCall:
    return CancelCall(
        gateway=call.gateway,
        payment_id=call.payment_id,
        provider_payment_id=None,
        reason="abandoned",
        idempotency_key=f"payment-{call.payment_id}:cancel",
    )


# -------------------------------------------------------------------- AliPay sandbox


@pytest_asyncio.fixture
async def alipay() -> AsyncIterator[AlipayGateway]:
    gw = AlipayGateway(
        AlipaySettings(**ALIPAY, sandbox=True, notify_url="https://merchant.example/webhooks/alipay")
    )
    yield gw
    await gw.aclose()


@needs_alipay
async def test_alipay_precreate_query_close(alipay):
    call = order("alipay", "precreate", 1)

    created = await alipay.authorize(call)
    assert created.status is GatewayPaymentStatus.REQUIRES_ACTION
    assert created.next_action.type is NextActionType.DISPLAY_QR_CODE and created.next_action.qr_code

    again = await alipay.authorize(call)  # the same out_trade_no: the same trade
    assert again.status is GatewayPaymentStatus.REQUIRES_ACTION

    assert (await alipay.lookup(lookup(call))).status is GatewayPaymentStatus.REQUIRES_ACTION
    assert (await alipay.cancel(cancel(call))).status is GatewayPaymentStatus.CANCELLED
    assert (await alipay.lookup(lookup(call))).status is GatewayPaymentStatus.CANCELLED


@needs_alipay
async def test_alipay_unknown_trade_and_refund(alipay):
    call = order("alipay", "precreate", 1)
    assert (await alipay.lookup(lookup(call))).status is GatewayPaymentStatus.NOT_FOUND
    refund = await alipay.lookup_refund(
        RefundLookupCall(
            gateway="alipay", payment_id=call.payment_id, provider_payment_id=None, refund_id="re_live"
        )
    )
    assert refund.status is RefundStatus.FAILED


@needs_alipay
async def test_alipay_page_link_is_signed_and_not_yet_a_trade(alipay):
    call = order("alipay", "page", 1)
    created = await alipay.authorize(call)
    assert created.next_action.type is NextActionType.REDIRECT_TO_URL
    assert created.next_action.url.startswith("https://openapi-sandbox.dl.alipaydev.com/gateway.do?")
    assert (await alipay.lookup(lookup(call))).status is GatewayPaymentStatus.REQUIRES_ACTION


# -------------------------------------------------------------------- WeChat Pay (real merchant, 1 fen, never paid)


@pytest_asyncio.fixture
async def wechat() -> AsyncIterator[WechatPayGateway]:
    extra = {}
    if _secret("WECHATPAY_LIVE_PUBLIC_KEY"):
        extra = {
            "platform_public_key": _secret("WECHATPAY_LIVE_PUBLIC_KEY"),
            "platform_public_key_id": os.environ.get("WECHATPAY_LIVE_PUBLIC_KEY_ID", ""),
        }
    gw = WechatPayGateway(
        WechatPaySettings(**WECHAT, **extra, notify_url="https://merchant.example/webhooks/wechat_pay")
    )
    yield gw
    await gw.aclose()


@needs_wechat
async def test_wechat_native_order_query_close(wechat):
    call = order("wechat_pay", "native", 1)

    created = await wechat.authorize(call)
    assert created.status is GatewayPaymentStatus.REQUIRES_ACTION
    assert created.next_action.qr_code.startswith("weixin://")

    assert (await wechat.lookup(lookup(call))).status is GatewayPaymentStatus.REQUIRES_ACTION
    assert (await wechat.cancel(cancel(call))).status is GatewayPaymentStatus.CANCELLED
    assert (await wechat.lookup(lookup(call))).status is GatewayPaymentStatus.CANCELLED


@needs_wechat
async def test_wechat_unknown_order_is_not_found(wechat):
    assert (
        await wechat.lookup(lookup(order("wechat_pay", "native", 1)))
    ).status is GatewayPaymentStatus.NOT_FOUND
