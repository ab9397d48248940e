"""AliPay Open Platform requests and answers as plain data: the `biz_content` of a trade or a refund
from our contracts and settings, and a queried trade, a refund query or a notification mapped to our
results. No HTTP, no keys: the adapter (adapter.py) signs, sends, verifies and sequences the calls.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from activities.gateways.alipay.settings import AlipaySettings
from activities.gateways.base import GatewayInvalidRequest
from activities.gateways.china import CHINA_TIME, in_china_time
from workflows.domain import Failure, RefundStatus
from workflows.gateway_io import (
    AuthorizeCall,
    GatewayPaymentStatus,
    GatewayResult,
    RefundCall,
    RefundResult,
)
from workflows.money import Amount, from_minor

# AliPay reads and writes times as "yyyy-MM-dd HH:mm:ss" in Beijing time.
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

FLOWS = ("precreate", "page", "wap", "app")
API_METHOD = {
    "precreate": "alipay.trade.precreate",
    "page": "alipay.trade.page.pay",
    "wap": "alipay.trade.wap.pay",
    "app": "alipay.trade.app.pay",
}
_PRODUCT_CODE = {
    "precreate": "FACE_TO_FACE_PAYMENT",
    "page": "FAST_INSTANT_TRADE_PAY",
    "wap": "QUICK_WAP_WAY",
    "app": "QUICK_MSECURITY_PAY",
}
# Signed requests the customer submits; the trade exists at AliPay only once they do.
CUSTOMER_CREATED_FLOWS = frozenset({"page", "wap", "app"})
_OUT_NO = re.compile(r"^[0-9A-Za-z_\-]{1,64}$")


def trade_request(call: AuthorizeCall, flow: str, settings: AlipaySettings) -> dict[str, Any]:
    """The `biz_content` that creates (precreate) or, signed and handed to the customer, opens
    (page / wap / app) the trade of this payment."""
    biz: dict[str, Any] = {
        "out_trade_no": out_trade_no_for(call.payment_id),
        "total_amount": yuan(call.amount, settings.currency),
        "subject": (call.description or f"Order {call.order_id}")[:256],
        "product_code": _PRODUCT_CODE[flow],
    }
    if call.expires_at is not None:
        # The trade stops accepting payment when the workflow stops waiting for it; for the
        # customer-created flows this also bounds how long the signed link can start a trade.
        biz["time_expire"] = alipay_time(call.expires_at)
    return_url = call.return_url or settings.return_url
    if flow == "wap" and return_url:
        biz["quit_url"] = return_url  # where "cancel" on AliPay's mobile cashier goes
    return biz


def refund_request(call: RefundCall, settings: AlipaySettings) -> dict[str, Any]:
    """The `biz_content` of `alipay.trade.refund`."""
    biz: dict[str, Any] = {
        "out_trade_no": out_trade_no_for(call.payment_id),
        "refund_amount": yuan(call.amount, settings.currency),
        # Required for partial refunds, and what makes a retried refund the same refund.
        "out_request_no": out_request_no_for(call.refund_id),
    }
    if call.reason:
        biz["refund_reason"] = call.reason[:256]
    return biz


def trade_result(data: Mapping[str, Any], currency: str) -> GatewayResult:
    """A queried trade (`alipay.trade.query`) as the workflow sees it."""
    status_text = str(data.get("trade_status", ""))
    summary = {"trade_status": status_text}
    if data.get("trade_no"):
        summary["trade_no"] = str(data["trade_no"])
    paid_minor = minor_of(data.get("total_amount"), currency)
    if status_text in ("TRADE_SUCCESS", "TRADE_FINISHED") or (
        status_text == "TRADE_CLOSED" and data.get("send_pay_date")
    ):
        # A closed trade with a payment date was paid and then fully refunded: it was paid.
        return GatewayResult(
            status=GatewayPaymentStatus.SUCCEEDED,
            provider_payment_id=data.get("trade_no") or None,
            authorized_minor=paid_minor,
            captured_minor=paid_minor,
            provider_response=summary,
        )
    status = {
        "WAIT_BUYER_PAY": GatewayPaymentStatus.REQUIRES_ACTION,
        "TRADE_CLOSED": GatewayPaymentStatus.CANCELLED,
    }.get(status_text, GatewayPaymentStatus.PROCESSING)
    return GatewayResult(
        status=status, provider_payment_id=data.get("trade_no") or None, provider_response=summary
    )


def refund_query_result(refund_id: str, data: Mapping[str, Any], *, window_passed: bool) -> RefundResult:
    """A successful `alipay.trade.fastpay.refund.query` answer as our refund result.

    Without `refund_status` AliPay means "the refund request was not received, or it failed", and
    warns that a query soon after the request may not see a success yet: pending (asked again)
    until `window_passed`, then failed."""
    if data.get("refund_status") == "REFUND_SUCCESS":
        return RefundResult(refund_id=refund_id, status=RefundStatus.SUCCEEDED)
    if not window_passed:
        return RefundResult(refund_id=refund_id, status=RefundStatus.PENDING)
    return RefundResult(
        refund_id=refund_id,
        status=RefundStatus.FAILED,
        failure=Failure(
            code="refund_not_found", message="AliPay has no successful refund under this request number"
        ),
    )


def out_trade_no_for(payment_id: str) -> str:
    """Our payment id *is* the merchant trade number: a retried create repeats the same trade and
    a notification names the payment it belongs to."""
    if not _OUT_NO.match(payment_id):
        raise GatewayInvalidRequest("the payment id does not fit AliPay's out_trade_no (64 of 0-9A-Za-z_-)")
    return payment_id


def out_request_no_for(refund_id: str) -> str:
    """Unique within the trade, which is all AliPay asks of a refund request number."""
    if not _OUT_NO.match(refund_id):
        raise GatewayInvalidRequest("the refund id does not fit AliPay's out_request_no (64 of 0-9A-Za-z_-)")
    return refund_id


def alipay_time(moment: datetime) -> str:
    return in_china_time(moment).strftime(TIME_FORMAT)


def yuan(amount: Amount, currency: str) -> str:
    """Our minor units as AliPay's decimal yuan string, for the configured currency only."""
    if amount.currency != currency:
        raise GatewayInvalidRequest(f"AliPay is configured for {currency}, not {amount.currency}")
    return str(from_minor(amount.minor, amount.currency))


def minor_of(value: Any, currency: str) -> int | None:
    """AliPay's decimal yuan (`"66.60"`) in minor units; None when absent."""
    if value in (None, ""):
        return None
    return Amount.of(Decimal(str(value)), currency).minor


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        # gmt_refund carries milliseconds ("yyyy-MM-dd HH:mm:ss.SSS"); the others do not.
        return datetime.strptime(value[:19], TIME_FORMAT).replace(tzinfo=CHINA_TIME)
    except ValueError:
        return None
