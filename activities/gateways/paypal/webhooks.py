"""PayPal's webhooks: the `PAYPAL-TRANSMISSION-*` headers checked here, the signature checked by
PayPal itself (`POST /v1/notifications/verify-webhook-signature`, sent by the adapter with the
request this module builds), and the verified event mapped to the workflow's events.

PayPal signs `"{transmission_id}|{transmission_time}|{webhook_id}|{crc32(raw body)}"` with
SHA256withRSA under the certificate at `PAYPAL-CERT-URL`; the verification call must carry the event
exactly as received, so it is spliced into the request as raw bytes, never re-serialized. PayPal
signs a time but checks no age: our window on `PAYPAL-TRANSMISSION-TIME` refuses stale and replayed
deliveries (each delivery attempt is signed anew).
"""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from activities.gateways.base import WebhookVerificationError
from activities.gateways.paypal.transform import amount_of, declined
from workflows.gateway_io import GatewayEvent, GatewayEventKind

AUTH_ALGO = "SHA256withRSA"
_HEADERS = ("transmission-id", "transmission-time", "transmission-sig", "cert-url", "auth-algo")

_PAYMENT_EVENTS = {
    "CHECKOUT.ORDER.APPROVED": GatewayEventKind.PAYMENT_PROCESSING,  # approved: we capture next
    "PAYMENT.CAPTURE.COMPLETED": GatewayEventKind.PAYMENT_SUCCEEDED,
    "PAYMENT.CAPTURE.DENIED": GatewayEventKind.PAYMENT_FAILED,
    "PAYMENT.CAPTURE.DECLINED": GatewayEventKind.PAYMENT_FAILED,
    "PAYMENT.CAPTURE.PENDING": GatewayEventKind.PAYMENT_PROCESSING,
    "PAYMENT.AUTHORIZATION.CREATED": GatewayEventKind.PAYMENT_AUTHORIZED,
    "PAYMENT.AUTHORIZATION.VOIDED": GatewayEventKind.PAYMENT_CANCELLED,
}
_REFUND_EVENTS = ("PAYMENT.CAPTURE.REFUNDED", "PAYMENT.CAPTURE.REVERSED")
_DISPUTE_EVENTS = {
    "CUSTOMER.DISPUTE.CREATED": GatewayEventKind.DISPUTE_OPENED,
    "CUSTOMER.DISPUTE.UPDATED": GatewayEventKind.DISPUTE_OPENED,
    "CUSTOMER.DISPUTE.RESOLVED": GatewayEventKind.DISPUTE_CLOSED,
}
# PayPal's dispute status / outcome in the words our dispute view uses (the rest lower-cased).
_DISPUTE_WORDS = {
    "OPEN": "needs_response",
    "WAITING_FOR_SELLER_RESPONSE": "needs_response",
    "RESOLVED_SELLER_FAVOUR": "won",
    "RESOLVED_BUYER_FAVOUR": "lost",
}


@dataclass(frozen=True)
class Transmission:
    """The signature headers of one delivery."""

    id: str
    time: str
    sig: str
    cert_url: str
    auth_algo: str


def signed_message(transmission_id: str, transmission_time: str, webhook_id: str, body: bytes) -> str:
    """What PayPal signs: the CRC-32 of the raw body as an unsigned decimal."""
    return f"{transmission_id}|{transmission_time}|{webhook_id}|{zlib.crc32(body) & 0xFFFFFFFF}"


def transmission_of(headers: Mapping[str, str], *, window_seconds: int) -> Transmission:
    """The delivery's signature headers (any case), present, of PayPal's algorithm, and signed
    within `window_seconds` of now."""
    lower = {k.lower(): v for k, v in headers.items()}
    values = {name: lower.get(f"paypal-{name}", "").strip() for name in _HEADERS}
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise WebhookVerificationError(f"missing PAYPAL-{', PAYPAL-'.join(n.upper() for n in missing)}")
    if values["auth-algo"] != AUTH_ALGO:
        raise WebhookVerificationError(f"unsupported PAYPAL-AUTH-ALGO {values['auth-algo']!r}")
    try:
        signed_at = datetime.fromisoformat(values["transmission-time"].replace("Z", "+00:00"))
    except ValueError:
        raise WebhookVerificationError("unreadable PAYPAL-TRANSMISSION-TIME") from None
    if signed_at.tzinfo is None:
        raise WebhookVerificationError("PAYPAL-TRANSMISSION-TIME without a time zone")
    if abs(time.time() - signed_at.timestamp()) > window_seconds:
        raise WebhookVerificationError("PAYPAL-TRANSMISSION-TIME outside the accepted window")
    return Transmission(
        id=values["transmission-id"],
        time=values["transmission-time"],
        sig=values["transmission-sig"],
        cert_url=values["cert-url"],
        auth_algo=values["auth-algo"],
    )


def parse_event(body: bytes) -> dict[str, Any]:
    try:
        event = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise WebhookVerificationError("the body is not JSON") from None
    if not isinstance(event, dict) or not event.get("id") or not event.get("event_type"):
        raise WebhookVerificationError("the body is not a PayPal event")
    return event


def verification_request(transmission: Transmission, webhook_id: str, body: bytes) -> bytes:
    """The body of `POST /v1/notifications/verify-webhook-signature`, with `webhook_event` the raw
    bytes as received (the caller has checked they are one JSON object)."""
    fields = {
        "auth_algo": transmission.auth_algo,
        "cert_url": transmission.cert_url,
        "transmission_id": transmission.id,
        "transmission_sig": transmission.sig,
        "transmission_time": transmission.time,
        "webhook_id": webhook_id,
    }
    return json.dumps(fields).encode()[:-1] + b', "webhook_event": ' + body + b"}"


def verification_succeeded(answer: Any) -> bool:
    return isinstance(answer, Mapping) and answer.get("verification_status") == "SUCCESS"


def events_of(event: Mapping[str, Any], gateway_id: str) -> list[GatewayEvent]:
    """A verified PayPal event as the workflow's event; an event type we do not act on is
    acknowledged and recorded as UNKNOWN."""
    event_type = str(event["event_type"])
    resource = event.get("resource") or {}
    common: dict[str, Any] = {
        "gateway": gateway_id,
        "event_id": str(event["id"]),
        "provider_type": event_type,
        "occurred_at": _time(event.get("create_time")),
    }
    if event_type in _PAYMENT_EVENTS:
        return [_payment_event(_PAYMENT_EVENTS[event_type], event_type, resource, common)]
    if event_type in _REFUND_EVENTS:
        return [_refund_event(event_type, resource, common)]
    if event_type in _DISPUTE_EVENTS:
        return [_dispute_event(_DISPUTE_EVENTS[event_type], resource, common)]
    return [GatewayEvent(kind=GatewayEventKind.UNKNOWN, **common)]


def _payment_event(
    kind: GatewayEventKind, event_type: str, resource: Mapping[str, Any], common: dict[str, Any]
) -> GatewayEvent:
    if event_type == "CHECKOUT.ORDER.APPROVED":  # the resource is the order
        units = resource.get("purchase_units") or [{}]
        return GatewayEvent(
            kind=kind, payment_id=units[0].get("custom_id"), provider_payment_id=resource.get("id"), **common
        )
    # A capture or an authorization: it names its order and echoes the order's custom_id.
    related = (resource.get("supplementary_data") or {}).get("related_ids") or {}
    failure = None
    if kind is GatewayEventKind.PAYMENT_FAILED:
        reason = (resource.get("status_details") or {}).get("reason")
        failure = declined(f"PayPal declined the capture ({reason or resource.get('status')})", reason)
    return GatewayEvent(
        kind=kind,
        payment_id=resource.get("custom_id"),
        provider_payment_id=related.get("order_id"),
        amount=amount_of(resource.get("amount")) if kind is GatewayEventKind.PAYMENT_SUCCEEDED else None,
        failure=failure,
        **common,
    )


def _refund_event(event_type: str, refund: Mapping[str, Any], common: dict[str, Any]) -> GatewayEvent:
    """A refund (ours carry our refund id in custom_id and our payment id in invoice_id) or a
    reversal (PayPal took the money back: recorded as a refund made at the provider)."""
    ours = event_type == "PAYMENT.CAPTURE.REFUNDED"
    status = refund.get("status")
    kind = (
        GatewayEventKind.REFUND_FAILED
        if status in ("FAILED", "CANCELLED")
        else GatewayEventKind.REFUND_SUCCEEDED
    )
    return GatewayEvent(
        kind=kind,
        payment_id=refund.get("invoice_id"),
        refund_id=refund.get("custom_id") if ours else None,
        provider_refund_id=refund.get("id"),
        amount=amount_of(refund.get("amount")),
        **common,
    )


def _dispute_event(
    kind: GatewayEventKind, dispute: Mapping[str, Any], common: dict[str, Any]
) -> GatewayEvent:
    transactions = dispute.get("disputed_transactions") or [{}]
    outcome = (dispute.get("dispute_outcome") or {}).get("outcome_code")
    money = dispute.get("dispute_amount")
    return GatewayEvent(
        kind=kind,
        payment_id=transactions[0].get("invoice_number") or transactions[0].get("custom"),
        dispute_id=dispute.get("dispute_id"),
        dispute_status=_dispute_word(str(outcome or dispute.get("status") or "")),
        dispute_reason=dispute.get("reason"),
        amount=amount_of(money) if money else None,
        **common,
    )


def _dispute_word(value: str) -> str | None:
    return _DISPUTE_WORDS.get(value, value.lower()) if value else None


def _time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None
    except ValueError:
        return None
