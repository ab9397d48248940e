"""WeChat Pay's signatures and notifications: a `WECHATPAY2-SHA256-RSA2048` signature (answers and
notifications alike) checked against the platform keys we hold, within a bounded time window, and a
notification's resource decrypted (AEAD_AES_256_GCM with the APIv3 key) for this merchant. Pure:
the adapter keeps the platform keys (and their download) and answers WeChat.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from activities.gateways.base import WebhookVerificationError
from activities.gateways.signing import DecryptionError, aes_256_gcm_decrypt, line_message, rsa_sha256_verify
from activities.gateways.wechat_pay.settings import WechatPaySettings

AUTH_SCHEME = "WECHATPAY2-SHA256-RSA2048"
# The official Go SDK's window, applied both ways: a notification from the future is as suspect as
# a replayed old one.
TIMESTAMP_TOLERANCE_SECONDS = 300


class UnknownPlatformSerial(WebhookVerificationError):
    """Signed with a key we do not (yet) have: fails verification, may trigger a certificate download."""


def verified_signature(headers: Mapping[str, str], body: bytes, keys: Mapping[str, str], now: float) -> str:
    """Check a WeChat Pay signature (notification or response) against `keys` (serial -> PEM);
    return the serial it used."""
    h = {k.lower(): v for k, v in headers.items()}
    try:
        timestamp = h["wechatpay-timestamp"]
        nonce = h["wechatpay-nonce"]
        signature = h["wechatpay-signature"]
        serial = h["wechatpay-serial"]
    except KeyError as exc:
        raise WebhookVerificationError(f"missing header {exc.args[0]}") from exc
    scheme = h.get("wechatpay-signature-type", AUTH_SCHEME)
    if scheme != AUTH_SCHEME:
        raise WebhookVerificationError(f"unsupported signature type {scheme!r}")
    try:
        ts = int(timestamp)
    except ValueError as exc:
        raise WebhookVerificationError("Wechatpay-Timestamp is not a number") from exc
    # Rejected at 300 s exactly too, as the Go SDK does (`>= FiveMinute`).
    if abs(now - ts) >= TIMESTAMP_TOLERANCE_SECONDS:
        raise WebhookVerificationError("Wechatpay-Timestamp is outside the 300 s window")
    key = keys.get(serial)
    if key is None:
        raise UnknownPlatformSerial(f"unknown Wechatpay-Serial {serial!r}")
    message = line_message(timestamp, nonce, body.decode("utf-8", errors="replace"))
    if not rsa_sha256_verify(key, message, signature):
        raise WebhookVerificationError("Wechatpay-Signature does not verify")
    return serial


def decrypted_notification(
    body: bytes, settings: WechatPaySettings
) -> tuple[str, str, dict[str, Any], dict[str, Any]]:
    """A verified notification's id, type, envelope and decrypted resource (this merchant's)."""
    try:
        envelope = json.loads(body)
        resource = envelope["resource"]
        event_id = str(envelope["id"])
        event_type = str(envelope["event_type"])
        if resource.get("algorithm") != "AEAD_AES_256_GCM":
            raise WebhookVerificationError(f"unsupported resource algorithm {resource.get('algorithm')!r}")
        plaintext = aes_256_gcm_decrypt(
            settings.apiv3_key.get_secret_value(),
            resource["nonce"],
            resource.get("associated_data") or "",
            resource["ciphertext"],
        )
        data = json.loads(plaintext)
    except DecryptionError as exc:
        raise WebhookVerificationError(
            "the notification resource did not decrypt with the APIv3 key"
        ) from exc
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise WebhookVerificationError("malformed WeChat Pay notification") from exc
    if str(data.get("mchid", settings.mchid)) != settings.mchid:
        raise WebhookVerificationError("the notification is for another merchant")
    return event_id, event_type, envelope, data
