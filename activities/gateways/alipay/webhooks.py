"""AliPay's asynchronous notifications: a form-encoded body, RSA2-signed over its sorted parameters
with AliPay's key, verified and mapped to the workflow's event. Pure: no HTTP; the adapter answers
AliPay (`success` / `fail`)."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import parse_qsl

from activities.gateways.alipay import GATEWAY_ID as ALIPAY
from activities.gateways.alipay.settings import AlipaySettings
from activities.gateways.alipay.transform import parse_time
from activities.gateways.base import WebhookVerificationError
from activities.gateways.signing import rsa_sha256_verify, sorted_params_content
from workflows.gateway_io import GatewayEvent, GatewayEventKind
from workflows.money import Amount, MoneyError


def verified_notification(body: bytes, settings: AlipaySettings) -> dict[str, str]:
    """The notification's parameters, once signed by AliPay for this app (and seller)."""
    params = parse_notification(body)
    sign = params.get("sign")
    if not sign:
        raise WebhookVerificationError("missing sign")
    # sign_type is not covered by the signature: it must never choose the algorithm.
    if params.get("sign_type", "RSA2") != "RSA2":
        raise WebhookVerificationError(f"unsupported sign_type {params.get('sign_type')!r}")
    content = sorted_params_content(params, exclude=("sign", "sign_type"))
    if not rsa_sha256_verify(settings.alipay_public_key or "", content, sign):
        raise WebhookVerificationError("sign does not verify with the AliPay public key")
    if params.get("app_id") != settings.app_id:
        raise WebhookVerificationError("the notification is for another app_id")
    if settings.seller_id and params.get("seller_id") != settings.seller_id:
        raise WebhookVerificationError("the notification is for another seller")
    if not params.get("notify_id") or not params.get("out_trade_no"):
        raise WebhookVerificationError("notify_id and out_trade_no are required")
    return params


def parse_notification(body: bytes) -> dict[str, str]:
    """A form-encoded notification, URL-decoded exactly once; a repeated key is malformed."""
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError) as exc:
        raise WebhookVerificationError("malformed AliPay notification") from exc
    params: dict[str, str] = {}
    for key, value in pairs:
        if key in params:
            raise WebhookVerificationError(f"repeated parameter {key!r}")
        params[key] = value
    return params


def notification_event(params: Mapping[str, str], currency: str) -> GatewayEvent:
    """A verified notification's parameters as the workflow's event."""
    trade_status = params.get("trade_status", "")
    base = dict(
        gateway=ALIPAY,
        event_id=params["notify_id"],
        provider_type=f"{params.get('notify_type', 'trade_status_sync')}:{trade_status}",
        payment_id=params["out_trade_no"],
        provider_payment_id=params.get("trade_no") or None,
    )
    if params.get("out_biz_no") or params.get("gmt_refund") or params.get("refund_fee"):
        # A refund on the trade (partial: TRADE_SUCCESS, full: TRADE_CLOSED). `refund_fee` is the
        # trade's *cumulative* refund, not this refund's amount, so the event carries none.
        return GatewayEvent(
            kind=GatewayEventKind.REFUND_SUCCEEDED,
            refund_id=params.get("out_biz_no") or None,
            occurred_at=parse_time(params.get("gmt_refund")),
            **base,
        )
    if trade_status in ("TRADE_SUCCESS", "TRADE_FINISHED"):
        try:
            amount = Amount.of(params.get("total_amount", ""), currency)
        except MoneyError as exc:
            raise WebhookVerificationError("total_amount is not a yuan amount") from exc
        return GatewayEvent(
            kind=GatewayEventKind.PAYMENT_SUCCEEDED,
            amount=amount,
            occurred_at=parse_time(params.get("gmt_payment") or params.get("notify_time")),
            **base,
        )
    if trade_status == "TRADE_CLOSED":
        return GatewayEvent(
            kind=GatewayEventKind.PAYMENT_CANCELLED,
            occurred_at=parse_time(params.get("gmt_close") or params.get("notify_time")),
            **base,
        )
    if trade_status == "WAIT_BUYER_PAY":
        return GatewayEvent(kind=GatewayEventKind.PAYMENT_REQUIRES_ACTION, **base)
    return GatewayEvent(kind=GatewayEventKind.UNKNOWN, **base)
