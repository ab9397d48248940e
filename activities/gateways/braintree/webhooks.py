"""Braintree's webhooks: the `bt_signature` / `bt_payload` form, URL-decoded exactly once and
verified and parsed by the SDK (`webhook_notification.parse`: HMAC-SHA1 keyed with SHA-1 of the
private key, the pair chosen by our public key), and the notifications mapped to the workflow's
events. No HTTP; the adapter acknowledges.

Braintree signs no delivery time and names no event id: a notification is identified by its kind,
its subject's id and its (signed) timestamp, which a resent delivery repeats, so the workflow's
de-duplication on `event_id` takes it once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import braintree
from braintree.exceptions.invalid_signature_error import InvalidSignatureError

from activities.gateways.base import WebhookVerificationError
from activities.gateways.braintree.transform import amount_of, failure_of, refund_order_id, sale_order_id
from workflows.domain import Failure
from workflows.gateway_io import GatewayEvent, GatewayEventKind

_FIELDS = ("bt_signature", "bt_payload")
_REFUND_MARK = "/refund/"


def form_fields(body: bytes) -> tuple[str, str]:
    """`bt_signature` and `bt_payload` of the posted form, each present exactly once."""
    try:
        text = body.decode("ascii")
        form = parse_qs(text, keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError) as exc:
        raise WebhookVerificationError("Braintree webhook body is not a form") from exc
    values = [form.get(name, []) for name in _FIELDS]
    if any(len(found) != 1 or not found[0] for found in values):
        raise WebhookVerificationError("Braintree webhook needs one bt_signature and one bt_payload")
    return values[0][0], values[1][0]


def verified_notification(body: bytes, sdk: braintree.BraintreeGateway) -> Any:
    """The notification in the posted form, once the SDK proved it is signed with our key pair."""
    signature, payload = form_fields(body)
    try:
        return sdk.webhook_notification.parse(signature, payload)
    except InvalidSignatureError as exc:
        raise WebhookVerificationError(f"Braintree webhook signature: {exc}") from exc
    except Exception as exc:  # a signed payload that is not a notification (bad base64 / XML)
        raise WebhookVerificationError(f"Braintree webhook payload: {type(exc).__name__}") from exc


def events_of(notification: Any, gateway_id: str) -> list[GatewayEvent]:
    """A verified notification as the workflow's events."""
    kind = str(notification.kind)
    subject = _subject(notification)
    timestamp = notification.timestamp
    occurred = timestamp.replace(tzinfo=UTC) if isinstance(timestamp, datetime) else None
    stamp = occurred.isoformat() if occurred else ""
    common: dict[str, Any] = {
        "gateway": gateway_id,
        "event_id": f"{kind}:{getattr(subject, 'id', '') or ''}:{stamp}",
        "provider_type": kind,
        "occurred_at": occurred,
    }
    transaction = getattr(notification, "transaction", None)
    dispute = getattr(notification, "dispute", None)
    if transaction is not None and kind in (
        "transaction_settled",
        "transaction_settlement_declined",
        "transaction_disbursed",
        "refund_failed",
    ):
        return [_transaction_event(kind, transaction, common)]
    if dispute is not None and kind.startswith("dispute_"):
        return [_dispute_event(kind, dispute, common)]
    # `check` (the Control Panel's test), and every kind we do not act on: acknowledged, recorded.
    return [GatewayEvent(kind=GatewayEventKind.UNKNOWN, **common)]


def _subject(notification: Any) -> Any:
    for name in ("transaction", "dispute", "subscription", "disbursement"):
        if getattr(notification, name, None) is not None:
            return getattr(notification, name)
    return None


def _ours(order_id: Any) -> tuple[str | None, str | None]:
    """(our payment id, our refund id) named by a transaction's `order_id`."""
    if not isinstance(order_id, str) or not order_id:
        return None, None
    payment_id, mark, refund_id = order_id.partition(_REFUND_MARK)
    if mark and refund_order_id(payment_id, refund_id) == order_id:
        return payment_id, refund_id
    return sale_order_id(order_id), None


def _transaction_event(kind: str, transaction: Any, common: dict[str, Any]) -> GatewayEvent:
    payment_id, refund_id = _ours(getattr(transaction, "order_id", None))
    amount = amount_of(getattr(transaction, "amount", None), getattr(transaction, "currency_iso_code", None))
    is_refund = getattr(transaction, "type", None) == "credit" or kind == "refund_failed"
    if is_refund:
        refunded = getattr(transaction, "refunded_transaction_id", None)
        if kind in ("refund_failed", "transaction_settlement_declined"):
            event_kind = GatewayEventKind.REFUND_FAILED
        elif kind == "transaction_settled":
            event_kind = GatewayEventKind.REFUND_SUCCEEDED
        else:
            event_kind = GatewayEventKind.UNKNOWN
        failure = (
            Failure(
                code="refund_failed", message=f"Braintree refund {getattr(transaction, 'status', 'failed')}"
            )
            if event_kind is GatewayEventKind.REFUND_FAILED
            else None
        )
        return GatewayEvent(
            kind=event_kind,
            payment_id=payment_id,
            provider_payment_id=refunded,
            amount=amount,
            refund_id=refund_id,
            provider_refund_id=getattr(transaction, "id", None),
            failure=failure,
            **common,
        )
    kinds = {
        "transaction_settled": GatewayEventKind.PAYMENT_SUCCEEDED,
        "transaction_settlement_declined": GatewayEventKind.PAYMENT_FAILED,
    }
    # transaction_disbursed: the money reached the merchant's bank; recorded, changes nothing.
    event_kind = kinds.get(kind, GatewayEventKind.UNKNOWN)
    return GatewayEvent(
        kind=event_kind,
        payment_id=payment_id,
        provider_payment_id=getattr(transaction, "id", None),
        amount=amount,
        failure=failure_of(transaction) if event_kind is GatewayEventKind.PAYMENT_FAILED else None,
        **common,
    )


_DISPUTE_CLOSED = frozenset(
    {"dispute_won", "dispute_lost", "dispute_accepted", "dispute_auto_accepted", "dispute_expired"}
)


def _dispute_event(kind: str, dispute: Any, common: dict[str, Any]) -> GatewayEvent:
    details = getattr(dispute, "transaction_details", None)
    payment_id, _ = _ours(getattr(details, "order_id", None))
    status: str | None
    if kind == "dispute_opened":
        # Braintree's "open" is what the workflow calls a dispute that needs a response.
        event_kind, status = GatewayEventKind.DISPUTE_OPENED, "needs_response"
    elif kind in _DISPUTE_CLOSED:
        event_kind, status = GatewayEventKind.DISPUTE_CLOSED, getattr(dispute, "status", None)
    else:  # under review, disputed: recorded, nothing decided
        event_kind, status = GatewayEventKind.UNKNOWN, getattr(dispute, "status", None)
    return GatewayEvent(
        kind=event_kind,
        payment_id=payment_id,
        provider_payment_id=getattr(details, "id", None),
        amount=amount_of(
            getattr(dispute, "amount_disputed", None), getattr(dispute, "currency_iso_code", None)
        ),
        dispute_id=getattr(dispute, "id", None),
        dispute_status=status,
        dispute_reason=getattr(dispute, "reason", None),
        **common,
    )
