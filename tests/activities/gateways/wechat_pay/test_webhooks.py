"""WeChat Pay's signatures and notifications without HTTP: a signature checked against the
platform keys we hold within the time window, a resource decrypted for this merchant."""

from __future__ import annotations

import time
from typing import Any

import pytest

from activities.gateways.base import WebhookVerificationError
from activities.gateways.wechat_pay.fake import FakeWechatPay
from activities.gateways.wechat_pay.webhooks import (
    UnknownPlatformSerial,
    decrypted_notification,
    verified_signature,
)

FAKE = FakeWechatPay()
SETTINGS = FAKE.settings(
    platform_public_key=FAKE.platform_public_key, platform_public_key_id=FAKE.public_key_id
)
KEYS = {FAKE.platform_serial: FAKE.platform_public_key}


def notification(**overrides: Any) -> tuple[dict[str, str], bytes]:
    resource = {"mchid": FAKE.mchid, "out_trade_no": "pay_1", "trade_state": "SUCCESS"}
    return FAKE.notification(
        "TRANSACTION.SUCCESS",
        resource,
        original_type="transaction",
        summary="paid",
        event_id="evt-1",
        **overrides,
    )


def test_a_signed_notification_is_verified_and_decrypted() -> None:
    headers, body = notification()
    assert verified_signature(headers, body, KEYS, time.time()) == FAKE.platform_serial
    event_id, event_type, _, data = decrypted_notification(body, SETTINGS)
    assert (event_id, event_type, data["out_trade_no"]) == ("evt-1", "TRANSACTION.SUCCESS", "pay_1")


def test_a_tampered_stale_or_unknown_key_signature_is_refused() -> None:
    headers, body = notification()
    with pytest.raises(WebhookVerificationError, match="does not verify"):
        verified_signature(headers, body.replace(b"evt-1", b"evt-2"), KEYS, time.time())
    with pytest.raises(WebhookVerificationError, match="300 s window"):
        verified_signature(headers, body, KEYS, time.time() + 301)
    with pytest.raises(UnknownPlatformSerial):
        verified_signature(headers, body, {}, time.time())
    headers.pop("Wechatpay-Nonce")
    with pytest.raises(WebhookVerificationError, match="missing header"):
        verified_signature(headers, body, KEYS, time.time())


def test_a_resource_under_another_key_or_for_another_merchant_is_refused() -> None:
    _, body = notification(apiv3_key="k" * 32)
    with pytest.raises(WebhookVerificationError, match="did not decrypt"):
        decrypted_notification(body, SETTINGS)
    _, body = notification()
    with pytest.raises(WebhookVerificationError, match="another merchant"):
        decrypted_notification(body, SETTINGS.model_copy(update={"mchid": "1900000002"}))
