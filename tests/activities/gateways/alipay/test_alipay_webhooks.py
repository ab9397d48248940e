"""AliPay async notifications: RSA2 over the sorted decoded pairs without sign / sign_type, app_id
check, mapping of TRADE_SUCCESS / TRADE_FINISHED / TRADE_CLOSED and refunds, `success` answer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from datetime import timedelta
from urllib.parse import parse_qsl, quote, urlencode

import pytest
import pytest_asyncio

from activities.gateways.alipay.adapter import AlipayGateway
from activities.gateways.alipay.fake import FakeAlipay
from activities.gateways.base import WebhookVerificationError
from activities.gateways.fake_server import keypair
from tests.activities.gateways.helpers import ALIPAY, paid, serving
from workflows.gateway_io import GatewayEventKind
from workflows.money import Amount

fake = serving(FakeAlipay)


@pytest_asyncio.fixture
async def gateway(fake: FakeAlipay) -> AsyncIterator[AlipayGateway]:
    async with aclosing(AlipayGateway(fake.settings())) as gw:
        yield gw


async def paid_trade(
    fake: FakeAlipay, gateway: AlipayGateway, payment_id: str, minor: int | None = None
) -> None:
    # The subject travels in the notification: non-ASCII, and an "&" the form encoding must escape.
    await paid(fake, gateway, ALIPAY, payment_id, minor=minor, description="测试商品 & more")


async def test_trade_success_becomes_payment_succeeded_with_the_amount(fake, gateway, unique):
    payment_id = f"pay_{unique}"
    await paid_trade(fake, gateway, payment_id)
    headers, body = fake.trade_notification(payment_id, notify_id="ac05099524730693a8b330c5ecf72da9786")

    [event] = gateway.parse_webhook(headers, body)

    assert event.kind is GatewayEventKind.PAYMENT_SUCCEEDED
    assert event.event_id == "ac05099524730693a8b330c5ecf72da9786"
    assert event.payment_id == payment_id
    assert event.provider_payment_id == fake.trades[payment_id].trade_no
    assert event.amount == Amount(minor=8888, currency="CNY")
    assert event.provider_type == "trade_status_sync:TRADE_SUCCESS"
    assert event.occurred_at is not None and event.occurred_at.utcoffset() == timedelta(hours=8)


async def test_the_amount_is_carried_as_sent_for_the_workflow_to_check(fake, gateway, unique):
    await paid_trade(fake, gateway, f"pay_{unique}")
    [event] = gateway.parse_webhook(*fake.trade_notification(f"pay_{unique}", total_amount="0.01"))
    assert event.amount == Amount(minor=1, currency="CNY")


async def test_trade_finished_and_closed(fake, gateway, unique):
    await paid_trade(fake, gateway, f"pay_{unique}")
    [finished] = gateway.parse_webhook(
        *fake.trade_notification(f"pay_{unique}", trade_status="TRADE_FINISHED")
    )
    assert finished.kind is GatewayEventKind.PAYMENT_SUCCEEDED
    [closed] = gateway.parse_webhook(
        *fake.trade_notification(
            f"pay_{unique}", trade_status="TRADE_CLOSED", gmt_payment=None, gmt_close="2026-11-27 10:00:00"
        )
    )
    assert closed.kind is GatewayEventKind.PAYMENT_CANCELLED
    [waiting] = gateway.parse_webhook(
        *fake.trade_notification(f"pay_{unique}", trade_status="WAIT_BUYER_PAY")
    )
    assert waiting.kind is GatewayEventKind.PAYMENT_REQUIRES_ACTION


async def test_partial_and_full_refund_notifications(fake, gateway, unique):
    payment_id = f"pay_{unique}"
    await paid_trade(fake, gateway, payment_id, minor=1000)
    for refund_id, minor in (("ref_a", 300), ("ref_b", 700)):
        await gateway.refund(ALIPAY.refund(payment_id, refund_id, minor))
    [partial] = gateway.parse_webhook(
        *fake.refund_notification(payment_id, "ref_a", trade_status="TRADE_SUCCESS")
    )
    assert partial.kind is GatewayEventKind.REFUND_SUCCEEDED
    assert (partial.payment_id, partial.refund_id) == (payment_id, "ref_a")
    # refund_fee is cumulative: the event must not pass it off as this refund's amount.
    assert partial.amount is None
    assert partial.occurred_at is not None
    [full] = gateway.parse_webhook(*fake.refund_notification(payment_id, "ref_b"))
    assert fake.trades[payment_id].trade_status == "TRADE_CLOSED"
    assert full.kind is GatewayEventKind.REFUND_SUCCEEDED and full.refund_id == "ref_b"


async def test_unknown_trade_status_is_recorded_only(fake, gateway, unique):
    await paid_trade(fake, gateway, f"pay_{unique}")
    [event] = gateway.parse_webhook(*fake.trade_notification(f"pay_{unique}", trade_status="SOMETHING_NEW"))
    assert event.kind is GatewayEventKind.UNKNOWN


# -------------------------------------------------------------------- what must be rejected


def genuine_form(fake: FakeAlipay, payment_id: str) -> tuple[dict[str, str], dict[str, str]]:
    """A genuine trade notification's headers and decoded form fields, to change before re-encoding."""
    headers, body = fake.trade_notification(payment_id)
    return headers, dict(parse_qsl(body.decode()))


async def test_tampered_amount_is_rejected(fake, gateway, unique):
    await paid_trade(fake, gateway, f"pay_{unique}")
    headers, params = genuine_form(fake, f"pay_{unique}")
    params["total_amount"] = "0.01"
    with pytest.raises(WebhookVerificationError, match="does not verify"):
        gateway.parse_webhook(headers, urlencode(params).encode())


async def test_signed_by_another_key_is_rejected(fake, gateway, unique):
    await paid_trade(fake, gateway, f"pay_{unique}")
    _, params = genuine_form(fake, f"pay_{unique}")
    params.pop("sign")
    headers, body = fake.notification(params, sign_with=keypair("alipay-app")[0])
    with pytest.raises(WebhookVerificationError):
        gateway.parse_webhook(headers, body)


async def test_sign_type_is_not_signed_but_cannot_choose_the_algorithm(fake, gateway, unique):
    await paid_trade(fake, gateway, f"pay_{unique}")
    headers, params = genuine_form(fake, f"pay_{unique}")
    params["sign_type"] = "RSA"
    with pytest.raises(WebhookVerificationError, match="sign_type"):
        gateway.parse_webhook(headers, urlencode(params).encode())


async def test_missing_sign_is_rejected(fake, gateway, unique):
    await paid_trade(fake, gateway, f"pay_{unique}")
    _, params = genuine_form(fake, f"pay_{unique}")
    params.pop("sign")
    with pytest.raises(WebhookVerificationError, match="missing sign"):
        gateway.parse_webhook({}, urlencode(params).encode())


async def test_other_app_id_is_rejected_even_when_signed_by_alipay(fake, gateway, unique):
    await paid_trade(fake, gateway, f"pay_{unique}")
    with pytest.raises(WebhookVerificationError, match="app_id"):
        gateway.parse_webhook(*fake.trade_notification(f"pay_{unique}", app_id="2021999999999999"))


async def test_seller_is_checked_when_configured(fake, unique):
    async with aclosing(AlipayGateway(fake.settings(seller_id="2088000000000000"))) as gw:
        await paid_trade(fake, gw, f"pay_{unique}")
        with pytest.raises(WebhookVerificationError, match="seller"):
            gw.parse_webhook(*fake.trade_notification(f"pay_{unique}"))


async def test_form_is_decoded_exactly_once(fake, gateway, unique):
    """A value that itself looks URL-encoded stays as sent: decoding twice would change what was signed."""
    await paid_trade(fake, gateway, f"pay_{unique}")
    [event] = gateway.parse_webhook(
        *fake.trade_notification(f"pay_{unique}", body="a%2Bb+c", passback_params="x=1&y=2")
    )
    assert event.kind is GatewayEventKind.PAYMENT_SUCCEEDED


async def test_plus_in_the_signature_must_arrive_encoded(fake, gateway, unique):
    await paid_trade(fake, gateway, f"pay_{unique}")
    # Base64 of 256 bytes almost always holds a '+'; a fresh notify_id gives a fresh signature.
    params = next(p for _, p in (genuine_form(fake, f"pay_{unique}") for _ in range(20)) if "+" in p["sign"])
    assert gateway.parse_webhook({}, urlencode(params).encode())  # '+' sent as %2B: fine
    # The sign with '+' left raw: a form decoder reads a space, and the signature no longer checks.
    raw = "&".join(f"{k}={quote(v, safe='+/=') if k == 'sign' else quote(v)}" for k, v in params.items())
    with pytest.raises(WebhookVerificationError):
        gateway.parse_webhook({}, raw.encode())


@pytest.mark.parametrize(
    "body",
    [b"notify_id=1&notify_id=2", b"\xff\xfe", b"no-equals-sign"],
)
def test_malformed_bodies_are_rejected(fake, body):
    gw = AlipayGateway(fake.settings(gateway_url="http://127.0.0.1:9/gateway.do"))
    with pytest.raises(WebhookVerificationError):
        gw.parse_webhook({}, body)


async def test_missing_notify_id_is_rejected(fake, gateway, unique):
    await paid_trade(fake, gateway, f"pay_{unique}")
    with pytest.raises(WebhookVerificationError, match="notify_id"):
        gateway.parse_webhook(*fake.trade_notification(f"pay_{unique}", notify_id=None))


def test_answers_are_plain_success_and_fail(fake):
    gw = AlipayGateway(fake.settings(gateway_url="http://127.0.0.1:9/gateway.do"))
    ack = gw.webhook_ack()
    assert (ack.status, ack.body, ack.content_type) == (200, b"success", "text/plain")
    reject = gw.webhook_reject()
    assert reject is not None and (reject.status, reject.body) == (400, b"fail")
