"""WeChat Pay notifications: signature, serial, ±300 s window, AEAD_AES_256_GCM resource, mapping,
platform certificates (download, rotation) and public-key mode, and the answers WeChat expects."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from datetime import timedelta

import pytest
import pytest_asyncio

from activities.gateways.base import WebhookVerificationError
from activities.gateways.wechat_pay.adapter import WechatPayGateway
from activities.gateways.wechat_pay.fake import FakeWechatPay
from activities.gateways.wechat_pay.webhooks import UnknownPlatformSerial
from tests.activities.gateways.helpers import WECHAT_PAY, paid, serving
from workflows.gateway_io import GatewayEventKind
from workflows.money import Amount

fake = serving(FakeWechatPay)


@pytest_asyncio.fixture
async def gateway(fake: FakeWechatPay) -> AsyncIterator[WechatPayGateway]:
    async with aclosing(WechatPayGateway(fake.settings())) as gw:
        await gw.refresh_platform_certificates()
        yield gw


async def test_payment_notification_becomes_a_payment_succeeded_event(fake, gateway, unique):
    payment_id = f"pay_{unique}"
    await paid(fake, gateway, WECHAT_PAY, payment_id)
    headers, body = fake.payment_notification(payment_id, event_id="EV-2018022511223320873")

    [event] = gateway.parse_webhook(headers, body)

    assert event.kind is GatewayEventKind.PAYMENT_SUCCEEDED
    assert event.event_id == "EV-2018022511223320873"
    assert event.payment_id == payment_id
    assert event.provider_payment_id == fake.trades[payment_id].transaction_id
    assert event.amount == Amount(minor=8888, currency="CNY")
    assert event.provider_type == "TRANSACTION.SUCCESS"
    assert event.occurred_at is not None and event.occurred_at.utcoffset() == timedelta(hours=8)


async def test_header_names_are_case_insensitive(fake, gateway, unique):
    await paid(fake, gateway, WECHAT_PAY, f"pay_{unique}")
    headers, body = fake.payment_notification(f"pay_{unique}")
    [event] = gateway.parse_webhook({k.lower(): v for k, v in headers.items()}, body)
    assert event.kind is GatewayEventKind.PAYMENT_SUCCEEDED


async def test_refund_notifications_map_success_abnormal_and_closed(fake, gateway, unique):
    payment_id = f"pay_{unique}"
    await paid(fake, gateway, WECHAT_PAY, payment_id, minor=10000)
    for refund_id, minor in (("ref_ok", 3000), ("ref_bad", 1000), ("ref_closed", 500)):
        await gateway.refund(WECHAT_PAY.refund(payment_id, refund_id, minor))
    fake.settle_refund(f"{payment_id}-ref_bad", "ABNORMAL")
    fake.settle_refund(f"{payment_id}-ref_closed", "CLOSED")

    [ok] = gateway.parse_webhook(*fake.refund_notification(f"{payment_id}-ref_ok"))
    assert ok.kind is GatewayEventKind.REFUND_SUCCEEDED
    assert (ok.payment_id, ok.refund_id, ok.amount) == (
        payment_id,
        "ref_ok",
        Amount(minor=3000, currency="CNY"),
    )
    assert ok.provider_refund_id == fake.refunds[f"{payment_id}-ref_ok"].refund_id

    [bad] = gateway.parse_webhook(*fake.refund_notification(f"{payment_id}-ref_bad"))
    assert bad.kind is GatewayEventKind.REFUND_FAILED and bad.refund_id == "ref_bad"
    assert bad.failure.decline_code == "ABNORMAL"

    [closed] = gateway.parse_webhook(*fake.refund_notification(f"{payment_id}-ref_closed"))
    assert closed.kind is GatewayEventKind.REFUND_FAILED and closed.failure.decline_code == "CLOSED"


async def test_other_event_types_are_recorded_as_unknown(fake, gateway):
    headers, body = fake.notification(
        "COMPLAINT.CREATE",
        {"complaint_id": "200201820200101080076610000", "action_type": "CREATE_COMPLAINT"},
        original_type="complaint",
        summary="产生新投诉",
    )
    [event] = gateway.parse_webhook(headers, body)
    assert event.kind is GatewayEventKind.UNKNOWN and event.provider_type == "COMPLAINT.CREATE"


# -------------------------------------------------------------------- what must be rejected


async def test_tampered_body_is_rejected(fake, gateway, unique):
    await paid(fake, gateway, WECHAT_PAY, f"pay_{unique}")
    headers, body = fake.payment_notification(f"pay_{unique}")
    tampered = body.replace(b'"summary":"', b'"summary":"x')
    with pytest.raises(WebhookVerificationError, match="does not verify"):
        gateway.parse_webhook(headers, tampered)


async def test_signature_by_another_key_is_rejected(fake, gateway, unique):
    await paid(fake, gateway, WECHAT_PAY, f"pay_{unique}")
    headers, body = fake.payment_notification(f"pay_{unique}")
    from activities.gateways.signing import line_message, rsa_sha256_sign

    headers["Wechatpay-Signature"] = rsa_sha256_sign(
        fake.merchant_private_key,
        line_message(headers["Wechatpay-Timestamp"], headers["Wechatpay-Nonce"], body.decode()),
    )
    with pytest.raises(WebhookVerificationError):
        gateway.parse_webhook(headers, body)


async def test_signtest_probe_is_rejected(fake, gateway, unique):
    await paid(fake, gateway, WECHAT_PAY, f"pay_{unique}")
    probe = "WECHATPAY/SIGNTEST/" + base64.b64encode(b"x" * 32).decode()
    headers, body = fake.payment_notification(f"pay_{unique}", signature=probe)
    with pytest.raises(WebhookVerificationError):
        gateway.parse_webhook(headers, body)


@pytest.mark.parametrize("skew", [-301, 301, -3600])
async def test_timestamps_outside_300_seconds_are_rejected(fake, gateway, unique, skew):
    """Replays (old) and forgeries from the future alike, although correctly signed."""
    await paid(fake, gateway, WECHAT_PAY, f"pay_{unique}")
    headers, body = fake.payment_notification(f"pay_{unique}", timestamp=int(time.time()) + skew)
    with pytest.raises(WebhookVerificationError, match="300"):
        gateway.parse_webhook(headers, body)


@pytest.mark.parametrize(("skew", "accepted"), [(-300, False), (300, False), (-299, True), (299, True)])
async def test_the_window_ends_at_300_seconds_as_in_the_go_sdk(fake, gateway, unique, skew, accepted):
    await paid(fake, gateway, WECHAT_PAY, f"pay_{unique}")
    now = int(time.time())
    headers, body = fake.payment_notification(f"pay_{unique}", timestamp=now + skew)
    async with aclosing(WechatPayGateway(fake.settings(), clock=lambda: now)) as fixed_clock:
        await fixed_clock.refresh_platform_certificates()
        if accepted:
            assert fixed_clock.parse_webhook(headers, body)
        else:
            with pytest.raises(WebhookVerificationError, match="300"):
                fixed_clock.parse_webhook(headers, body)


@pytest.mark.parametrize("skew", [-290, 290])
async def test_timestamps_inside_the_window_pass(fake, gateway, unique, skew):
    await paid(fake, gateway, WECHAT_PAY, f"pay_{unique}")
    headers, body = fake.payment_notification(f"pay_{unique}", timestamp=int(time.time()) + skew)
    assert gateway.parse_webhook(headers, body)[0].kind is GatewayEventKind.PAYMENT_SUCCEEDED


@pytest.mark.parametrize(
    "header", ["Wechatpay-Signature", "Wechatpay-Serial", "Wechatpay-Timestamp", "Wechatpay-Nonce"]
)
async def test_missing_headers_are_rejected(fake, gateway, unique, header):
    await paid(fake, gateway, WECHAT_PAY, f"pay_{unique}")
    headers, body = fake.payment_notification(f"pay_{unique}")
    del headers[header]
    with pytest.raises(WebhookVerificationError, match="missing"):
        gateway.parse_webhook(headers, body)


async def test_resource_encrypted_with_another_apiv3_key_is_rejected(fake, gateway, unique):
    await paid(fake, gateway, WECHAT_PAY, f"pay_{unique}")
    headers, body = fake.payment_notification(f"pay_{unique}", apiv3_key="0" * 32)
    with pytest.raises(WebhookVerificationError, match="decrypt"):
        gateway.parse_webhook(headers, body)


async def test_notification_for_another_merchant_is_rejected(fake, gateway, unique):
    await paid(fake, gateway, WECHAT_PAY, f"pay_{unique}")
    resource = fake._trade_json(fake.trades[f"pay_{unique}"]) | {"mchid": "1234567890"}
    headers, body = fake.notification(
        "TRANSACTION.SUCCESS", resource, original_type="transaction", summary="支付成功"
    )
    with pytest.raises(WebhookVerificationError, match="another merchant"):
        gateway.parse_webhook(headers, body)


async def test_malformed_body_is_rejected(fake, gateway):
    broken = json.dumps({"id": "x"}).encode()  # signed by WeChat's key, but no event in it
    headers = fake._signed_headers(broken)
    with pytest.raises(WebhookVerificationError, match="malformed"):
        gateway.parse_webhook(headers, broken)


# -------------------------------------------------------------------- keys: certificates, public key


async def test_unknown_serial_fails_then_a_background_download_learns_the_new_certificate(fake, unique):
    async with aclosing(WechatPayGateway(fake.settings())) as gw:
        await gw.refresh_platform_certificates()
        await paid(fake, gw, WECHAT_PAY, f"pay_{unique}")
        new_serial = fake.rotate_platform_certificate()
        headers, body = fake.payment_notification(f"pay_{unique}")
        assert headers["Wechatpay-Serial"] == new_serial
        downloads = fake.certificate_downloads
        gw._last_attempt = None  # the rate limit only spaces downloads; this test is not about it
        with pytest.raises(UnknownPlatformSerial):
            gw.parse_webhook(headers, body)  # never skipped: fails, and fetches in the background
        await asyncio.gather(*gw._background)  # the background download, to its end
        assert fake.certificate_downloads > downloads and new_serial in gw._platform_keys
        [event] = gw.parse_webhook(headers, body)  # WeChat's retry
        assert event.kind is GatewayEventKind.PAYMENT_SUCCEEDED


async def test_forged_serials_do_not_turn_into_a_download_each(fake, gateway, unique):
    await paid(fake, gateway, WECHAT_PAY, f"pay_{unique}")
    downloads = fake.certificate_downloads
    for n in range(5):
        headers, body = fake.payment_notification(f"pay_{unique}", serial=f"FORGED{n}")
        with pytest.raises(UnknownPlatformSerial):
            gateway.parse_webhook(headers, body)
    await asyncio.gather(*gateway._background)  # every download they started, to its end
    assert fake.certificate_downloads - downloads <= 1


async def test_first_api_call_downloads_certificates_to_verify_the_answer(fake, unique):
    async with aclosing(WechatPayGateway(fake.settings())) as gw:
        await paid(fake, gw, WECHAT_PAY, f"pay_{unique}")
        result = await gw.lookup(WECHAT_PAY.lookup(f"pay_{unique}", minor=1))
        assert result.status.value == "succeeded"
        assert fake.certificate_downloads == 1  # once, then cached


async def test_pinned_certificate_needs_no_download(fake, unique):
    pinned = fake.settings(
        platform_certificates=[fake.platform_certificate], fetch_platform_certificates=False
    )
    async with aclosing(WechatPayGateway(pinned)) as gw:
        await paid(fake, gw, WECHAT_PAY, f"pay_{unique}")
        assert (
            gw.parse_webhook(*fake.payment_notification(f"pay_{unique}"))[0].kind
            is GatewayEventKind.PAYMENT_SUCCEEDED
        )
        assert fake.certificate_downloads == 0


async def test_public_key_mode_verifies_answers_and_notifications_without_certificates(unique):
    async with FakeWechatPay(mode="public_key") as fake:
        async with aclosing(WechatPayGateway(fake.settings())) as gw:
            await paid(fake, gw, WECHAT_PAY, f"pay_{unique}")
            headers, body = fake.payment_notification(f"pay_{unique}")
            assert headers["Wechatpay-Serial"].startswith("PUB_KEY_ID_")
            [event] = gw.parse_webhook(headers, body)
            assert event.kind is GatewayEventKind.PAYMENT_SUCCEEDED
            assert fake.certificate_downloads == 0
            headers, body = fake.payment_notification(
                f"pay_{unique}", serial="PUB_KEY_ID_0000000000000024101100397200000006"
            )
            with pytest.raises(WebhookVerificationError):
                gw.parse_webhook(headers, body)


# -------------------------------------------------------------------- answers


def test_ack_is_204_without_body_and_reject_is_the_json_wechat_documents(fake):
    gw = WechatPayGateway(fake.settings(api_base="http://127.0.0.1:9"))
    ack = gw.webhook_ack()
    assert (ack.status, ack.body) == (204, b"")
    reject = gw.webhook_reject("bad signature")
    assert reject.status >= 400 and reject.content_type == "application/json"
    assert json.loads(reject.body) == {"code": "FAIL", "message": "bad signature"}


async def test_genuine_notification_without_the_documented_fields_is_refused(fake, gateway):
    headers, body = fake.notification(
        "TRANSACTION.SUCCESS",
        {"mchid": fake.mchid, "out_trade_no": "pay_123456", "trade_state": "SUCCESS"},
        original_type="transaction",
        summary="支付成功",
    )
    with pytest.raises(WebhookVerificationError, match=r"unexpected TRANSACTION\.SUCCESS content"):
        gateway.parse_webhook(headers, body)
