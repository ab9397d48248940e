"""Stripe's webhooks: the `Stripe-Signature` check (HMAC-SHA256 over `t.body` with any of the
endpoint's secrets, through the SDK's verifier, and a bounded timestamp both ways) and the events
mapped to the workflow's. No HTTP; the adapter acknowledges."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import stripe

from activities.gateways.base import WebhookVerificationError
from activities.gateways.stripe.settings import StripeSettings
from activities.gateways.stripe.transform import (
    METADATA_PAYMENT_ID,
    METADATA_REFUND_ID,
    failure_from_error,
    from_stripe_amount,
)
from workflows.domain import Failure
from workflows.gateway_io import GatewayEvent, GatewayEventKind
from workflows.money import Amount, MoneyError, is_known_currency


def verified_event(signature: str | None, body: bytes, settings: StripeSettings) -> dict[str, Any]:
    """The event in `body`, once `signature` (the `Stripe-Signature` header) proves it is
    Stripe's, signed with one of our endpoint secrets, and recent."""
    _verify_signature(signature, body, settings)
    try:
        event = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WebhookVerificationError("Stripe webhook body is not JSON") from exc
    if not isinstance(event, dict) or not isinstance(event.get("id"), str) or not event.get("type"):
        raise WebhookVerificationError("Stripe webhook body is not an event")
    return event


def _verify_signature(header: str | None, body: bytes, settings: StripeSettings) -> None:
    if not header:
        raise WebhookVerificationError("missing Stripe-Signature header")
    try:
        payload = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WebhookVerificationError("Stripe webhook body is not UTF-8") from exc
    tolerance = settings.webhook_tolerance_seconds
    verified = False
    for secret in settings.webhook_secret:
        try:
            stripe.WebhookSignature.verify_header(payload, header, secret.get_secret_value(), tolerance)
        except stripe.SignatureVerificationError:
            continue
        verified = True
        break
    if not verified:
        raise WebhookVerificationError("Stripe-Signature does not match, or its timestamp is too old")
    # The SDK bounds only the past. A timestamp far in the future is no clock skew we should
    # honour: it would let a captured request be replayed for as long as it claims.
    timestamp = _signature_timestamp(header)
    if timestamp > time.time() + tolerance:
        raise WebhookVerificationError("Stripe-Signature timestamp is in the future")


def _signature_timestamp(header: str) -> int:
    for item in header.split(","):
        key, _, value = item.partition("=")
        if key.strip() == "t":
            return int(value)
    raise WebhookVerificationError("Stripe-Signature has no timestamp")


def events_of(event: Mapping[str, Any], gateway_id: str) -> list[GatewayEvent]:
    """A verified Stripe event as the workflow's events (one, or one per refund it names)."""
    kind_of_type = event["type"]
    obj = ((event.get("data") or {}).get("object")) or {}
    created = event.get("created")
    common: dict[str, Any] = {
        "gateway": gateway_id,
        "event_id": event["id"],
        "provider_type": kind_of_type,
        "occurred_at": datetime.fromtimestamp(created, UTC) if isinstance(created, int | float) else None,
    }
    if event.get("object") != "event" or not isinstance(obj, Mapping):
        return [GatewayEvent(kind=GatewayEventKind.UNKNOWN, **common)]
    if kind_of_type.startswith("payment_intent."):
        return [_intent_event(kind_of_type, obj, common)]
    if kind_of_type in ("refund.created", "refund.updated", "refund.failed"):
        return [_refund_event(obj, common)]
    if kind_of_type == "charge.refunded":
        return _charge_refunded_events(obj, common)
    if kind_of_type in ("charge.dispute.created", "charge.dispute.closed"):
        return [_dispute_event(kind_of_type, obj, common)]
    return [GatewayEvent(kind=GatewayEventKind.UNKNOWN, **common)]


def _intent_event(event_type: str, intent: Mapping[str, Any], common: dict[str, Any]) -> GatewayEvent:
    kinds = {
        "payment_intent.succeeded": (GatewayEventKind.PAYMENT_SUCCEEDED, "amount_received"),
        "payment_intent.amount_capturable_updated": (
            GatewayEventKind.PAYMENT_AUTHORIZED,
            "amount_capturable",
        ),
        "payment_intent.payment_failed": (GatewayEventKind.PAYMENT_FAILED, "amount"),
        "payment_intent.requires_action": (GatewayEventKind.PAYMENT_REQUIRES_ACTION, "amount"),
        "payment_intent.processing": (GatewayEventKind.PAYMENT_PROCESSING, "amount"),
        "payment_intent.canceled": (GatewayEventKind.PAYMENT_CANCELLED, "amount"),
    }
    kind, amount_field = kinds.get(event_type, (GatewayEventKind.UNKNOWN, "amount"))
    return GatewayEvent(
        kind=kind,
        payment_id=(intent.get("metadata") or {}).get(METADATA_PAYMENT_ID),
        provider_payment_id=intent.get("id"),
        amount=_amount(intent.get(amount_field), intent.get("currency")),
        failure=failure_from_error(intent.get("last_payment_error"))
        if kind is GatewayEventKind.PAYMENT_FAILED
        else None,
        **common,
    )


def _refund_event(refund: Mapping[str, Any], common: dict[str, Any]) -> GatewayEvent:
    status = refund.get("status")
    metadata = refund.get("metadata") or {}
    failure = None
    if status == "succeeded":
        kind = GatewayEventKind.REFUND_SUCCEEDED
    elif status in ("failed", "canceled"):
        kind = GatewayEventKind.REFUND_FAILED
        reason = refund.get("failure_reason") or status
        failure = Failure(code="refund_failed", message=f"Stripe refund {status}: {reason}")
    else:  # pending, requires_action: nothing decided yet
        kind = GatewayEventKind.UNKNOWN
    return GatewayEvent(
        kind=kind,
        payment_id=metadata.get(METADATA_PAYMENT_ID),
        provider_payment_id=_id_of(refund.get("payment_intent")),
        amount=_amount(refund.get("amount"), refund.get("currency")),
        refund_id=metadata.get(METADATA_REFUND_ID),
        provider_refund_id=refund.get("id"),
        failure=failure,
        **common,
    )


def _charge_refunded_events(charge: Mapping[str, Any], common: dict[str, Any]) -> list[GatewayEvent]:
    """`charge.refunded` names the refunds only on API versions before 2022-11-15 (which
    embedded `charge.refunds`); newer ones say just how much was refunded, so the event is
    recorded and `refund.updated` / `refund.failed` carry the news per refund."""
    refunds = (charge.get("refunds") or {}).get("data") or []
    if not refunds:
        return [
            GatewayEvent(
                kind=GatewayEventKind.UNKNOWN,
                payment_id=(charge.get("metadata") or {}).get(METADATA_PAYMENT_ID),
                provider_payment_id=_id_of(charge.get("payment_intent")),
                amount=_amount(charge.get("amount_refunded"), charge.get("currency")),
                **common,
            )
        ]
    events = []
    for refund in refunds:
        one = _refund_event(refund, common)
        # One notification, several refunds: each gets its own id for the workflow's de-duplication.
        events.append(one.model_copy(update={"event_id": f"{common['event_id']}:{refund.get('id')}"}))
    return events


def _dispute_event(event_type: str, dispute: Mapping[str, Any], common: dict[str, Any]) -> GatewayEvent:
    return GatewayEvent(
        kind=GatewayEventKind.DISPUTE_OPENED
        if event_type == "charge.dispute.created"
        else GatewayEventKind.DISPUTE_CLOSED,
        provider_payment_id=_id_of(dispute.get("payment_intent")),
        amount=_amount(dispute.get("amount"), dispute.get("currency")),
        dispute_id=dispute.get("id"),
        dispute_status=dispute.get("status"),
        dispute_reason=dispute.get("reason"),
        **common,
    )


def _id_of(value: Any) -> str | None:
    """An expandable field: an id, or the expanded object."""
    if isinstance(value, Mapping):
        return value.get("id")
    return value if isinstance(value, str) else None


def _amount(value: Any, currency: Any) -> Amount | None:
    if not isinstance(value, int) or not isinstance(currency, str) or not is_known_currency(currency):
        return None
    try:
        return from_stripe_amount(value, currency)
    except MoneyError:
        return None
