"""Airwallex's webhooks: the signature check and the events mapped to the workflow's. No HTTP; the
adapter acknowledges (200).

`x-signature` is the hex HMAC-SHA256, keyed with the endpoint's secret, of `x-timestamp` (Unix
milliseconds) immediately followed by the raw body; it is compared in constant time, and the
timestamp must be within the tolerance (five minutes) both ways, so a captured delivery cannot be
replayed later.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from activities.gateways.airwallex.settings import AirwallexSettings
from activities.gateways.airwallex.transform import (
    METADATA_PAYMENT_ID,
    METADATA_REFUND_ID,
    amount_of,
    decode,
    failure_of,
    refund_status,
)
from activities.gateways.base import WebhookVerificationError
from activities.gateways.signing import constant_time_equals, hmac_sha256_hex
from workflows.domain import Failure, RefundStatus
from workflows.gateway_io import GatewayEvent, GatewayEventKind

TIMESTAMP_HEADER = "x-timestamp"
SIGNATURE_HEADER = "x-signature"

_INTENT_EVENTS = {
    "payment_intent.succeeded": GatewayEventKind.PAYMENT_SUCCEEDED,
    "payment_intent.requires_capture": GatewayEventKind.PAYMENT_AUTHORIZED,
    "payment_intent.requires_customer_action": GatewayEventKind.PAYMENT_REQUIRES_ACTION,
    "payment_intent.pending": GatewayEventKind.PAYMENT_PROCESSING,
    "payment_intent.cancelled": GatewayEventKind.PAYMENT_CANCELLED,
}
_FAILED_ATTEMPT_EVENTS = frozenset(
    {"payment_attempt.failed", "payment_attempt.authorization_failed", "payment_attempt.capture_failed"}
)
_REFUND_EVENTS = frozenset(
    {"refund.received", "refund.accepted", "refund.settled", "refund.succeeded", "refund.failed"}
)
# A dispute needs us while it waits for the merchant's response; these names say it is over.
_DISPUTE_CLOSED = frozenset({"won", "lost", "accepted", "expired", "reversed", "closed"})


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def verified_event(headers: Mapping[str, str], body: bytes, settings: AirwallexSettings) -> dict[str, Any]:
    """The event in `body`, once its headers prove it is Airwallex's, for our endpoint, and recent."""
    timestamp = _header(headers, TIMESTAMP_HEADER)
    signature = _header(headers, SIGNATURE_HEADER)
    if not timestamp or not signature:
        raise WebhookVerificationError("missing x-timestamp or x-signature")
    if not timestamp.isdigit():
        raise WebhookVerificationError("x-timestamp is not Unix milliseconds")
    expected = hmac_sha256_hex(settings.webhook_secret.get_secret_value(), timestamp.encode() + body)
    if not constant_time_equals(expected, signature.strip().lower()):
        raise WebhookVerificationError("x-signature does not match")
    age = time.time() - int(timestamp) / 1000
    if abs(age) > settings.webhook_tolerance_seconds:
        raise WebhookVerificationError("x-timestamp is outside the accepted window")
    try:
        event = decode(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise WebhookVerificationError("Airwallex webhook body is not JSON") from exc
    if not isinstance(event, dict) or not isinstance(event.get("id"), str) or not event.get("name"):
        raise WebhookVerificationError("Airwallex webhook body is not an event")
    return event


def events_of(event: Mapping[str, Any], gateway_id: str) -> list[GatewayEvent]:
    """A verified Airwallex event as the workflow's event."""
    name = str(event["name"])
    obj = (event.get("data") or {}).get("object")
    common: dict[str, Any] = {
        "gateway": gateway_id,
        "event_id": event["id"],
        "provider_type": name,
        "occurred_at": _time(event.get("created_at")),
    }
    if not isinstance(obj, Mapping):
        return [GatewayEvent(kind=GatewayEventKind.UNKNOWN, **common)]
    if name.startswith("payment_intent."):
        # Other intent events (created, updated) are recorded against the payment, changing nothing.
        kind = _INTENT_EVENTS.get(name, GatewayEventKind.UNKNOWN)
        field = "captured_amount" if kind is GatewayEventKind.PAYMENT_SUCCEEDED else "amount"
        return [
            GatewayEvent(
                kind=kind,
                payment_id=obj.get("merchant_order_id"),
                provider_payment_id=obj.get("id"),
                amount=amount_of(obj.get(field), obj.get("currency")),
                **common,
            )
        ]
    if name in _FAILED_ATTEMPT_EVENTS:
        return [
            GatewayEvent(
                kind=GatewayEventKind.PAYMENT_FAILED,
                payment_id=obj.get("merchant_order_id"),
                provider_payment_id=obj.get("payment_intent_id"),
                amount=amount_of(obj.get("amount"), obj.get("currency")),
                failure=failure_of(obj),
                **common,
            )
        ]
    if name in _REFUND_EVENTS:
        return [_refund_event(obj, common)]
    if name.startswith("payment_dispute."):
        return [_dispute_event(name, obj, common)]
    return [GatewayEvent(kind=GatewayEventKind.UNKNOWN, **common)]


def _refund_event(refund: Mapping[str, Any], common: dict[str, Any]) -> GatewayEvent:
    status = refund_status(refund)
    metadata = refund.get("metadata") or {}
    kind = {
        RefundStatus.SUCCEEDED: GatewayEventKind.REFUND_SUCCEEDED,
        RefundStatus.FAILED: GatewayEventKind.REFUND_FAILED,
    }.get(status, GatewayEventKind.UNKNOWN)  # RECEIVED: nothing decided yet
    failure = None
    if status is RefundStatus.FAILED:
        reason = refund.get("failure_reason") or "failed"
        failure = Failure(code="refund_failed", message=f"Airwallex refund failed: {reason}")
    return GatewayEvent(
        kind=kind,
        payment_id=metadata.get(METADATA_PAYMENT_ID),
        provider_payment_id=refund.get("payment_intent_id"),
        amount=amount_of(refund.get("amount"), refund.get("currency")),
        refund_id=metadata.get(METADATA_REFUND_ID),
        provider_refund_id=refund.get("id"),
        failure=failure,
        **common,
    )


def _dispute_event(name: str, dispute: Mapping[str, Any], common: dict[str, Any]) -> GatewayEvent:
    status = str(dispute.get("status") or name.removeprefix("payment_dispute.")).lower()
    reason = dispute.get("reason")
    if isinstance(reason, Mapping):
        reason = reason.get("type")
    closed = any(word in status for word in _DISPUTE_CLOSED)
    return GatewayEvent(
        kind=GatewayEventKind.DISPUTE_CLOSED if closed else GatewayEventKind.DISPUTE_OPENED,
        payment_id=dispute.get("merchant_order_id"),
        provider_payment_id=dispute.get("payment_intent_id"),
        amount=amount_of(dispute.get("amount"), dispute.get("currency")),
        dispute_id=dispute.get("id"),
        dispute_status=status,
        dispute_reason=str(reason) if reason else None,
        **common,
    )


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None
