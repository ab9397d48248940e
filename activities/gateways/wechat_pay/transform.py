"""WeChat Pay API v3 requests and answers as plain data: building an order or refund body from our
contracts and settings, mapping a trade, a refund or a notification to our results. No HTTP, no
keys: the adapter (adapter.py) signs, sends, verifies and decides what to call next.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from activities.gateways.base import GatewayInvalidRequest
from activities.gateways.china import in_china_time
from activities.gateways.wechat_pay import GATEWAY_ID as WECHAT_PAY
from activities.gateways.wechat_pay.settings import WechatPaySettings
from workflows.domain import Failure, RefundStatus, WalletMethod
from workflows.gateway_io import (
    AuthorizeCall,
    GatewayEvent,
    GatewayEventKind,
    GatewayPaymentStatus,
    GatewayResult,
    RefundCall,
    RefundResult,
)
from workflows.money import Amount

FLOWS = ("native", "jsapi", "h5", "app")
_OUT_TRADE_NO = re.compile(r"^[0-9A-Za-z_\-|*]{6,32}$")
_OUT_REFUND_NO = re.compile(r"^[0-9A-Za-z_\-|*@]{1,64}$")

_TRADE_STATES: dict[str, GatewayPaymentStatus] = {
    "SUCCESS": GatewayPaymentStatus.SUCCEEDED,
    "REFUND": GatewayPaymentStatus.SUCCEEDED,  # paid, then (partly) refunded: the payment happened
    "NOTPAY": GatewayPaymentStatus.REQUIRES_ACTION,
    "USERPAYING": GatewayPaymentStatus.PROCESSING,
    "CLOSED": GatewayPaymentStatus.CANCELLED,
    "REVOKED": GatewayPaymentStatus.CANCELLED,
    "PAYERROR": GatewayPaymentStatus.DECLINED,
}

_REFUND_STATES: dict[str, RefundStatus] = {
    "SUCCESS": RefundStatus.SUCCEEDED,
    "PROCESSING": RefundStatus.PENDING,
    "ABNORMAL": RefundStatus.FAILED,  # e.g. the payer's card was closed: needs an operator
    "CLOSED": RefundStatus.FAILED,
}


def order_request(call: AuthorizeCall, flow: str, settings: WechatPaySettings) -> dict[str, Any]:
    """The body of `POST /v3/pay/transactions/<flow>` for this payment."""
    body: dict[str, Any] = {
        "appid": settings.appid,
        "mchid": settings.mchid,
        # WeChat shows it to the payer and caps it at 127 characters.
        "description": (call.description or f"Order {call.order_id}")[:127],
        "out_trade_no": out_trade_no_for(call.payment_id),
        "attach": call.order_id[:128],
        "notify_url": settings.notify_url,
        "amount": {"total": call.amount.minor, "currency": call.amount.currency},
    }
    if call.expires_at is not None:
        # The order stops accepting payment when the workflow stops waiting for it.
        body["time_expire"] = wechat_time(call.expires_at)
    method = call.method
    if flow == "jsapi":
        if not (isinstance(method, WalletMethod) and method.payer_id):
            raise GatewayInvalidRequest("a WeChat JSAPI payment needs the payer's openid (method.payer_id)")
        body["payer"] = {"openid": method.payer_id}
    if flow == "h5":
        if not call.customer_ip:
            raise GatewayInvalidRequest("a WeChat H5 payment needs the customer's IP address")
        body["scene_info"] = {"payer_client_ip": call.customer_ip, "h5_info": {"type": "Wap"}}
    elif call.customer_ip:
        body["scene_info"] = {"payer_client_ip": call.customer_ip}
    return body


def refund_request(call: RefundCall, order_total_minor: int, settings: WechatPaySettings) -> dict[str, Any]:
    """The body of `POST /v3/refund/domestic/refunds`; WeChat wants the order's total beside the refund."""
    body: dict[str, Any] = {
        "out_trade_no": out_trade_no_for(call.payment_id),
        "out_refund_no": out_refund_no_for(call.payment_id, call.refund_id),
        "notify_url": settings.notify_url,
        "amount": {"refund": call.amount.minor, "total": order_total_minor, "currency": call.amount.currency},
    }
    if call.reason:
        body["reason"] = call.reason[:80]
    return body


def out_trade_no_for(payment_id: str) -> str:
    """Our payment id *is* the merchant order number: a retried create repeats the same order and
    a notification names the payment it belongs to."""
    if not _OUT_TRADE_NO.match(payment_id):
        raise GatewayInvalidRequest(
            "the payment id does not fit WeChat's out_trade_no (6-32 of 0-9A-Za-z_-|*)"
        )
    return payment_id


def out_refund_no_for(payment_id: str, refund_id: str) -> str:
    """Unique per merchant (WeChat's rule) even for refund ids only unique within a payment."""
    value = f"{payment_id}-{refund_id}"
    if not _OUT_REFUND_NO.match(value):
        raise GatewayInvalidRequest(
            "payment id + refund id do not fit WeChat's out_refund_no (64 characters)"
        )
    return value


def refund_id_from(out_trade_no: str, out_refund_no: str) -> str | None:
    prefix = f"{out_trade_no}-"
    return out_refund_no[len(prefix) :] if out_refund_no.startswith(prefix) else None


def wechat_time(moment: datetime) -> str:
    """RFC 3339 in Beijing time with an explicit offset, as WeChat Pay wants its timestamps
    (time_expire), seconds precision: `2026-11-27T23:35:00+08:00`."""
    return in_china_time(moment).replace(microsecond=0).isoformat()


def trade_result(data: Mapping[str, Any]) -> GatewayResult:
    """A queried trade as the workflow sees it."""
    state = str(data.get("trade_state", ""))
    status = _TRADE_STATES.get(state, GatewayPaymentStatus.PROCESSING)
    total = (data.get("amount") or {}).get("total")
    summary = {"trade_state": state}
    for key in ("trade_type", "transaction_id", "out_trade_no"):
        if data.get(key):
            summary[key] = str(data[key])
    failure = None
    if status is GatewayPaymentStatus.DECLINED:
        failure = Failure(
            code="payment_failed",
            message=str(data.get("trade_state_desc") or "payment failed"),
            decline_code=state,
        )
    paid = status is GatewayPaymentStatus.SUCCEEDED
    return GatewayResult(
        status=status,
        provider_payment_id=data.get("transaction_id") or None,
        authorized_minor=int(total) if paid and total is not None else None,
        captured_minor=int(total) if paid and total is not None else None,
        failure=failure,
        provider_response=summary,
    )


def refund_result(refund_id: str, data: Mapping[str, Any]) -> RefundResult:
    state = str(data.get("status", ""))
    status = _REFUND_STATES.get(state, RefundStatus.PENDING)
    failure = None
    if status is RefundStatus.FAILED:
        failure = Failure(
            code=f"refund_{state.lower()}", message=f"WeChat Pay refund {state}", decline_code=state
        )
    return RefundResult(
        refund_id=refund_id, status=status, provider_refund_id=data.get("refund_id") or None, failure=failure
    )


def refund_failed(refund_id: str, code: str, message: str) -> RefundResult:
    return RefundResult(
        refund_id=refund_id,
        status=RefundStatus.FAILED,
        failure=Failure(code="refund_rejected", message=message[:200], decline_code=code),
    )


def notification_event(
    event_id: str, event_type: str, envelope: Mapping[str, Any], data: Mapping[str, Any], currency: str
) -> GatewayEvent:
    """A verified, decrypted notification (`envelope` and its `resource` plaintext `data`) as the
    workflow's event; `currency`: the merchant's (WeChat omits it from refund amounts)."""
    out_trade_no = data.get("out_trade_no")
    base = dict(
        gateway=WECHAT_PAY,
        event_id=event_id,
        provider_type=event_type,
        payment_id=out_trade_no,
        provider_payment_id=data.get("transaction_id"),
        occurred_at=_parse_time(data.get("success_time") or envelope.get("create_time")),
    )
    amount = data.get("amount") or {}
    if event_type == "TRANSACTION.SUCCESS" and data.get("trade_state", "SUCCESS") == "SUCCESS":
        return GatewayEvent(
            kind=GatewayEventKind.PAYMENT_SUCCEEDED,
            amount=Amount(minor=int(amount["total"]), currency=amount.get("currency") or currency),
            **base,
        )
    if event_type.startswith("REFUND."):
        out_refund_no = str(data.get("out_refund_no", ""))
        refund_id = refund_id_from(out_trade_no, out_refund_no) if out_trade_no else None
        refund_amount = Amount(minor=int(amount["refund"]), currency=currency) if "refund" in amount else None
        if event_type == "REFUND.SUCCESS":
            return GatewayEvent(
                kind=GatewayEventKind.REFUND_SUCCEEDED,
                amount=refund_amount,
                refund_id=refund_id,
                provider_refund_id=data.get("refund_id"),
                **base,
            )
        if event_type in ("REFUND.ABNORMAL", "REFUND.CLOSED"):
            status = str(data.get("refund_status") or event_type.removeprefix("REFUND."))
            return GatewayEvent(
                kind=GatewayEventKind.REFUND_FAILED,
                amount=refund_amount,
                refund_id=refund_id,
                provider_refund_id=data.get("refund_id"),
                failure=Failure(
                    code=f"refund_{status.lower()}",
                    message=f"WeChat Pay refund {status}",
                    decline_code=status,
                ),
                **base,
            )
    return GatewayEvent(kind=GatewayEventKind.UNKNOWN, **base)


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None
