"""AliPay Open Platform (RSA2): QR (precreate), PC page, mobile wap and App payments, refunds,
asynchronous notifications.

Wire protocol (see /work/shared/docs/provider-protocols.md, section 3):
- every call is a form POST to the gateway with the common parameters and a JSON `biz_content`,
  signed RSA2 (SHA256withRSA, app private key) over the sorted `k=v` pairs without `sign`;
- answers are `{"<method>_response": {...}, "sign": "..."}`, the signature over the raw JSON text of
  the `_response` member, verified with the AliPay public key;
- notifications are form posts, signed over the sorted pairs without `sign` and `sign_type`; the
  answer that stops the resends is the plain text `success`;
- amounts are yuan strings with two decimals; idempotency is by business number: `out_trade_no` is
  our payment id, a refund's `out_request_no` is our refund id.

`page`, `wap` and `app` payments are signed requests the customer's browser or the AliPay app
submits: AliPay creates the trade only then, so until the customer opens it a query says "no such
trade" and that is not a failure. AliPay takes the money when the customer pays: there is no
authorization hold, so manual capture is not supported.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, NoReturn
from urllib.parse import urlencode, urlsplit

import httpx
from pydantic import BaseModel

from activities.gateways.alipay import GATEWAY_ID as ALIPAY
from activities.gateways.alipay.settings import AlipaySettings
from activities.gateways.alipay.transform import (
    API_METHOD,
    CUSTOMER_CREATED_FLOWS,
    FLOWS,
    TIME_FORMAT,
    out_request_no_for,
    out_trade_no_for,
    refund_query_result,
    refund_request,
    trade_request,
    trade_result,
)
from activities.gateways.alipay.webhooks import notification_event, verified_notification
from activities.gateways.base import (
    Gateway,
    GatewayConfigError,
    GatewayInvalidRequest,
    GatewayOutcomeUnknown,
    GatewayTransientError,
    NotSupported,
    WebhookAck,
    required_field,
)
from activities.gateways.china import CHINA_TIME
from activities.gateways.http import HttpTransport, raise_rejection
from activities.gateways.signing import (
    rsa_sha256_sign,
    rsa_sha256_verify,
    sorted_params_content,
)
from workflows.domain import (
    Failure,
    GatewayProfile,
    NextAction,
    NextActionType,
    PaymentMethod,
    RefundStatus,
    WalletMethod,
)
from workflows.gateway_io import (
    AuthorizeCall,
    CancelCall,
    CaptureCall,
    GatewayEvent,
    GatewayPaymentStatus,
    GatewayResult,
    LookupCall,
    RefundCall,
    RefundLookupCall,
    RefundResult,
)

logger = logging.getLogger(__name__)


SUCCESS = "10000"
# Common (non-business) error codes: https://opendocs.alipay.com/common/02km9f
_UNAVAILABLE = "20000"
_CONFIG_CODES = frozenset({"20001", "40003", "40006"})
_CONFIG_SUB_CODES = (
    "isv.invalid-signature",
    "isv.invalid-app-id",
    "isv.missing-signature",
    "isv.invalid-signature-type",
)
_SYSTEM_SUB_CODES = frozenset({"ACQ.SYSTEM_ERROR", "aop.ACQ.SYSTEM_ERROR"})


class _Answer(BaseModel):
    """One `<method>_response` member, signature checked."""

    code: str
    msg: str = ""
    sub_code: str = ""
    sub_msg: str = ""
    data: dict[str, Any]


class AlipayGateway(Gateway):
    def __init__(self, settings: AlipaySettings, *, transport: HttpTransport | None = None) -> None:
        self._settings = settings
        url = urlsplit(settings.endpoint)
        # The transport is per host; the gateway path (`/gateway.do`) is the one path every call uses.
        self._path = url.path or "/"
        self._transport = transport or HttpTransport(
            "AliPay", f"{url.scheme}://{url.netloc}", settings.http, headers={"User-Agent": "durapay"}
        )

    @property
    def profile(self) -> GatewayProfile:
        return GatewayProfile(
            id=ALIPAY,
            name="AliPay",
            methods=["wallet:alipay"],
            currencies=[self._settings.currency],
            min_minor=1,  # 0.01 yuan
            max_minor=100_000_000 * 100,  # 100 million yuan per trade
            supports_partial_capture=False,
            # The customer pays in full; there is no hold to capture later.
            supports_manual_capture=False,
            # No `notified_actions`: a QR code is scanned on another device (nobody comes back) and
            # must be polled. Page and app payments bring the customer back and the notify tells
            # success and close, but they are polled too: tests/e2e/test_alipay_e2e.py holds the
            # lookups made before the customer opens the page to it.
        )

    # ------------------------------------------------------------------ payments

    async def authorize(self, call: AuthorizeCall) -> GatewayResult:
        flow = self._flow(call.method)
        if flow is None:
            raise GatewayInvalidRequest("AliPay takes wallet payments with wallet=alipay")
        if not call.capture:
            raise NotSupported(
                "AliPay takes the money when the customer pays: manual capture is not supported"
            )
        out_trade_no = out_trade_no_for(call.payment_id)
        biz = trade_request(call, flow, self._settings)
        summary = {"method": API_METHOD[flow], "out_trade_no": out_trade_no}
        if flow == "precreate":
            answer = await self._call("alipay.trade.precreate", biz, mutating=True)
            if answer.code != SUCCESS:
                if answer.sub_code in (
                    "ACQ.TRADE_HAS_SUCCESS",
                    "ACQ.TRADE_HAS_CLOSE",
                    "ACQ.TRADE_HAS_FINISHED",
                ):
                    # A retried create after the customer paid (or the trade closed): the query tells.
                    return await self._query(out_trade_no, None)
                self._refuse(answer)
            action = NextAction(
                type=NextActionType.DISPLAY_QR_CODE,
                qr_code=required_field(answer.data, "qr_code", "AliPay"),
                expires_at=call.expires_at,
            )
            return GatewayResult(
                status=GatewayPaymentStatus.REQUIRES_ACTION, next_action=action, provider_response=summary
            )

        return_url = call.return_url or self._settings.return_url
        params = self.signed_params(API_METHOD[flow], biz, return_url=return_url if flow != "app" else None)
        if flow == "app":
            action = NextAction(
                type=NextActionType.USE_SDK,
                data={"order_string": urlencode(params)},
                expires_at=call.expires_at,
            )
        else:
            action = NextAction(
                type=NextActionType.REDIRECT_TO_URL,
                url=f"{self._settings.endpoint}?{urlencode(params)}",
                expires_at=call.expires_at,
            )
        return GatewayResult(
            status=GatewayPaymentStatus.REQUIRES_ACTION, next_action=action, provider_response=summary
        )

    async def capture(self, call: CaptureCall) -> GatewayResult:
        """Nothing to capture: a paid trade already moved the money, anything else cannot be captured."""
        result = await self._query(out_trade_no_for(call.payment_id), None)
        if result.status is GatewayPaymentStatus.SUCCEEDED:
            return result
        raise NotSupported(
            f"AliPay has no separate capture (trade is {result.provider_response.get('trade_status', result.status.value)})"
        )

    async def cancel(self, call: CancelCall) -> GatewayResult:
        out_trade_no = out_trade_no_for(call.payment_id)
        answer = await self._call("alipay.trade.close", {"out_trade_no": out_trade_no}, mutating=True)
        if answer.code == SUCCESS:
            return GatewayResult(
                status=GatewayPaymentStatus.CANCELLED, provider_response={"trade_status": "TRADE_CLOSED"}
            )
        if answer.sub_code == "ACQ.TRADE_NOT_EXIST":
            # Never opened (page / wap / app) or never created: nothing to close. A link already
            # handed out stops working at its time_expire.
            return GatewayResult(
                status=GatewayPaymentStatus.CANCELLED, provider_response={"trade_status": "NOT_EXIST"}
            )
        if answer.sub_code == "ACQ.TRADE_STATUS_ERROR":
            # Paid, or closed already: the query says which.
            known = await self._query(out_trade_no, None)
            if known.status in (GatewayPaymentStatus.SUCCEEDED, GatewayPaymentStatus.CANCELLED):
                return known
            raise GatewayTransientError(
                f"AliPay refused to close a trade in state {known.provider_response.get('trade_status')}"
            )
        self._refuse(answer)

    async def lookup(self, call: LookupCall) -> GatewayResult:
        return await self._query(out_trade_no_for(call.payment_id), call.method)

    async def _query(self, out_trade_no: str, method: PaymentMethod | None) -> GatewayResult:
        answer = await self._call("alipay.trade.query", {"out_trade_no": out_trade_no}, mutating=False)
        if answer.code != SUCCESS:
            if answer.sub_code == "ACQ.TRADE_NOT_EXIST":
                if self._flow(method) in CUSTOMER_CREATED_FLOWS:
                    # The customer has not opened the page / app yet: still waiting on them.
                    return GatewayResult(
                        status=GatewayPaymentStatus.REQUIRES_ACTION,
                        provider_response={"trade_status": "NOT_OPENED"},
                    )
                return GatewayResult(
                    status=GatewayPaymentStatus.NOT_FOUND, provider_response={"trade_status": "NOT_EXIST"}
                )
            self._refuse(answer)
        return trade_result(answer.data, self._settings.currency)

    # ------------------------------------------------------------------ refunds

    async def refund(self, call: RefundCall) -> RefundResult:
        out_trade_no = out_trade_no_for(call.payment_id)
        biz = refund_request(call, self._settings)
        answer = await self._call("alipay.trade.refund", biz, mutating=True)
        if answer.code != SUCCESS:
            return _refund_failed(call.refund_id, answer)
        if answer.data.get("fund_change") == "Y":
            return RefundResult(refund_id=call.refund_id, status=RefundStatus.SUCCEEDED)
        # "N": no money moved *by this call* - a repeat of a refund already made, or one still in
        # progress. The refund query is the authority.
        found = await self._query_refund(out_trade_no, call.refund_id, window_passed=False)
        if found.status is RefundStatus.SUCCEEDED:
            return found
        return RefundResult(refund_id=call.refund_id, status=RefundStatus.PENDING)

    async def lookup_refund(self, call: RefundLookupCall) -> RefundResult:
        # A refund of unknown age is never given up on here: its status stays pending.
        window_passed = call.requested_at is not None and (
            (datetime.now(UTC) - call.requested_at).total_seconds()
            > self._settings.refund_query_window_seconds
        )
        return await self._query_refund(
            out_trade_no_for(call.payment_id), call.refund_id, window_passed=window_passed
        )

    async def _query_refund(self, out_trade_no: str, refund_id: str, *, window_passed: bool) -> RefundResult:
        answer = await self._call(
            "alipay.trade.fastpay.refund.query",
            {"out_trade_no": out_trade_no, "out_request_no": out_request_no_for(refund_id)},
            mutating=False,
        )
        if answer.code != SUCCESS:
            if answer.sub_code == "ACQ.TRADE_NOT_EXIST":
                return _refund_failed(refund_id, answer)
            self._refuse(answer)
        return refund_query_result(refund_id, answer.data, window_passed=window_passed)

    # ------------------------------------------------------------------ notifications

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[GatewayEvent]:
        params = verified_notification(body, self._settings)
        return [notification_event(params, self._settings.currency)]

    def webhook_ack(self) -> WebhookAck:
        # Exactly `success`: any other body makes AliPay resend (8 times over about 25 h).
        return WebhookAck(status=200, body=b"success", content_type="text/plain")

    def webhook_reject(self) -> WebhookAck:
        # Anything but `success` makes AliPay resend; `fail` is the word it documents.
        return WebhookAck(status=400, body=b"fail", content_type="text/plain")

    # ------------------------------------------------------------------ transport

    def signed_params(
        self, method: str, biz: Mapping[str, Any], *, return_url: str | None = None
    ) -> dict[str, str]:
        """The common parameters, `biz_content` and the RSA2 `sign` for one request."""
        params = {
            "app_id": self._settings.app_id,
            "method": method,
            "format": "JSON",
            "charset": "utf-8",
            "sign_type": "RSA2",
            "timestamp": datetime.now(CHINA_TIME).strftime(TIME_FORMAT),
            "version": "1.0",
            "notify_url": self._settings.notify_url,
            "biz_content": json.dumps(biz, ensure_ascii=False, separators=(",", ":")),
        }
        if return_url:
            params["return_url"] = return_url
        params["sign"] = rsa_sha256_sign(
            self._settings.app_private_key.get_secret_value(),  # type: ignore[union-attr]
            sorted_params_content(params, exclude=("sign",)),
        )
        return params

    async def _call(self, method: str, biz: Mapping[str, Any], *, mutating: bool) -> _Answer:
        """POST one API call; returns a signed answer, success or business refusal (40004).
        Raises for everything that is not an answer about the trade itself."""
        params = self.signed_params(method, biz)
        request = self._transport.build_request(
            "POST",
            self._path,
            data=params,
            headers={"Content-Type": "application/x-www-form-urlencoded;charset=utf-8"},
        )
        response = await self._transport.send(request)
        if response.status_code >= 300:
            raise_rejection(response)
        answer = self._read_answer(method, response, mutating=mutating)
        if answer.code == SUCCESS:
            return answer
        if answer.code == _UNAVAILABLE or answer.sub_code in _SYSTEM_SUB_CODES:
            # AliPay's own "try again": the call may or may not have been carried out.
            error = GatewayOutcomeUnknown if mutating else GatewayTransientError
            raise error(f"AliPay {method}: {answer.code} {answer.sub_code or answer.msg}")
        if answer.code in _CONFIG_CODES or answer.sub_code.startswith(_CONFIG_SUB_CODES):
            raise GatewayConfigError(
                f"AliPay {method}: {answer.code} {answer.sub_code}: {answer.sub_msg or answer.msg}"[:300],
                code=answer.sub_code or answer.code,
            )
        return answer

    def _read_answer(self, method: str, response: httpx.Response, *, mutating: bool) -> _Answer:
        text = response.text
        key = method.replace(".", "_") + "_response"
        try:
            document = json.loads(text)
            member = key if key in document else "error_response"
            raw = raw_member(text, member)
            data = json.loads(raw)
            code = str(data["code"])
        except (ValueError, KeyError, TypeError) as exc:
            raise (GatewayOutcomeUnknown if mutating else GatewayTransientError)(
                f"AliPay {method}: unreadable answer"
            ) from exc
        sign = document.get("sign")
        if sign:
            if not rsa_sha256_verify(self._settings.alipay_public_key or "", raw, sign):
                raise (GatewayOutcomeUnknown if mutating else GatewayTransientError)(
                    f"AliPay {method}: answer signature does not verify"
                )
        elif code == SUCCESS or code == "40004":
            # AliPay signs every answer about a trade; an unsigned one could say anything.
            raise (GatewayOutcomeUnknown if mutating else GatewayTransientError)(
                f"AliPay {method}: unsigned answer"
            )
        return _Answer(
            code=code,
            msg=str(data.get("msg", "")),
            sub_code=str(data.get("sub_code", "")),
            sub_msg=str(data.get("sub_msg", "")),
            data=data,
        )

    def _refuse(self, answer: _Answer) -> NoReturn:
        raise GatewayInvalidRequest(
            f"AliPay refused: {answer.code} {answer.sub_code}: {answer.sub_msg or answer.msg}"[:300],
            code=answer.sub_code or answer.code,
        )

    # ------------------------------------------------------------------ checks and formats

    def _flow(self, method: PaymentMethod | None) -> str | None:
        if not isinstance(method, WalletMethod) or method.wallet != "alipay":
            return None
        flow = method.flow or "precreate"
        if flow not in FLOWS:
            raise GatewayInvalidRequest(f"AliPay has no {flow!r} flow; use one of {', '.join(FLOWS)}")
        return flow

    async def aclose(self) -> None:
        await self._transport.aclose()


def build(settings: AlipaySettings) -> AlipayGateway:
    """The registry's factory."""
    return AlipayGateway(settings)


# ---------------------------------------------------------------------- answers


def raw_member(text: str, key: str) -> str:
    """The exact JSON text of the top-level member `key`: what AliPay signed, byte for byte
    (re-serializing would change spacing, escapes and key order)."""
    decoder = json.JSONDecoder()
    index = 0
    text_len = len(text)
    while True:
        index = text.find(f'"{key}"', index)
        if index < 0:
            raise KeyError(key)
        cursor = index + len(key) + 2
        while cursor < text_len and text[cursor] in " \t\r\n":
            cursor += 1
        if cursor < text_len and text[cursor] == ":":
            cursor += 1
            while cursor < text_len and text[cursor] in " \t\r\n":
                cursor += 1
            _, end = decoder.raw_decode(text, cursor)
            return text[cursor:end]
        index = cursor


def _refund_failed(refund_id: str, answer: _Answer) -> RefundResult:
    return RefundResult(
        refund_id=refund_id,
        status=RefundStatus.FAILED,
        failure=Failure(
            code="refund_rejected",
            message=(answer.sub_msg or answer.msg or "refund refused")[:200],
            decline_code=answer.sub_code or answer.code,
        ),
    )
