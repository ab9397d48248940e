"""A fake AliPay Open Platform gateway (`/gateway.do`) on 127.0.0.1: real wire formats, generated
keys, stateful trades and refunds, signed answers, signed notifications, fault knobs.

It checks what AliPay checks (the RSA2 `sign` over the sorted parameters with the app public key,
the app id, the common parameters, amounts as yuan with at most two decimals) and answers like
AliPay: `{"<method>_response": {...}, "sign": "..."}` signed with the AliPay private key over the raw
JSON text of the `_response` member. `page` / `wap` / `app` requests are what the customer's browser
or app submits (`open`), which is when AliPay creates those trades.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
from aiohttp import web

from activities.gateways.alipay.settings import AlipaySettings
from activities.gateways.fake_server import FakeServer, FaultPlan, keypair
from activities.gateways.signing import rsa_sha256_sign, rsa_sha256_verify, sorted_params_content

CHINA = timezone(timedelta(hours=8))
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
CREATING_METHODS = {
    "alipay.trade.precreate": "FACE_TO_FACE_PAYMENT",
    "alipay.trade.page.pay": "FAST_INSTANT_TRADE_PAY",
    "alipay.trade.wap.pay": "QUICK_WAP_WAY",
    "alipay.trade.app.pay": "QUICK_MSECURITY_PAY",
}


class AlipayError(Exception):
    def __init__(self, code: str, msg: str, sub_code: str = "", sub_msg: str = "") -> None:
        super().__init__(sub_code or code)
        self.body = {
            "code": code,
            "msg": msg,
            **({"sub_code": sub_code, "sub_msg": sub_msg} if sub_code else {}),
        }


def business_error(sub_code: str, sub_msg: str) -> AlipayError:
    return AlipayError("40004", "Business Failed", sub_code, sub_msg)


@dataclass
class AlipayTrade:
    out_trade_no: str
    total_amount: Decimal
    subject: str
    product_code: str
    notify_url: str
    biz: dict[str, Any]
    time_expire: datetime | None
    trade_status: str = "WAIT_BUYER_PAY"
    trade_no: str = field(default_factory=lambda: "2026" + secrets.token_hex(12))
    qr_code: str = field(default_factory=lambda: "https://qr.alipay.com/bax0" + secrets.token_hex(10))
    buyer_id: str = ""
    send_pay_date: str | None = None
    refunds: dict[str, Decimal] = field(default_factory=dict)  # out_request_no -> amount

    @property
    def refunded(self) -> Decimal:
        return sum(self.refunds.values(), Decimal(0))


class FakeAlipay(FakeServer):
    def __init__(
        self,
        *,
        app_id: str = "2021000000000001",
        seller_id: str = "2088102177846880",
        app_key_slot: str = "alipay-app",
    ) -> None:
        super().__init__()
        self.app_id = app_id
        self.seller_id = seller_id
        self.app_private_key, self.app_public_key = keypair(app_key_slot)
        self.alipay_private_key, self.alipay_public_key = keypair("alipay-platform")
        self.trades: dict[str, AlipayTrade] = {}
        self.calls: list[str] = []  # API method of every authenticated request
        self.faults = FaultPlan()
        self.break_response_signatures = False
        self.unsigned_responses = False
        self.app.router.add_route("*", "/gateway.do", self._gateway)

    @property
    def gateway_url(self) -> str:
        return f"{self.base_url}/gateway.do"

    @property
    def url(self) -> str:
        return self.gateway_url  # AliPay has one endpoint: the gateway is what to show

    def settings(self, **overrides: Any) -> AlipaySettings:
        values: dict[str, Any] = dict(
            app_id=self.app_id,
            app_private_key=self.app_private_key,
            alipay_public_key=self.alipay_public_key,
            gateway_url=self.gateway_url,
            notify_url="https://merchant.example/webhooks/alipay",
            return_url="https://shop.example/paid",
        )
        values.update(overrides)
        return AlipaySettings(**values)

    def gateway_section(self, **overrides: Any) -> dict[str, Any]:
        """The raw `[payment.alipay]` config section for a running stack."""
        section = self.settings(**overrides).model_dump(
            mode="json", exclude_none=True, exclude={"app_private_key"}
        )
        section.update(enabled=True, app_private_key=self.app_private_key)
        return section

    # -------------------------------------------------------------- the customer and AliPay's side

    async def open(self, url_or_order_string: str) -> int:
        """What the customer's browser (page / wap redirect URL) or the AliPay app (order string)
        does with the signed request: AliPay verifies it and creates the trade. Returns the status."""
        query = urlsplit(url_or_order_string).query if "://" in url_or_order_string else url_or_order_string
        async with httpx.AsyncClient() as client:
            response = await client.get(f"{self.gateway_url}?{query}")
        return response.status_code

    def pay(self, out_trade_no: str, *, buyer_id: str = "2088102177296610") -> AlipayTrade:
        trade = self.trades[out_trade_no]
        if trade.trade_status != "WAIT_BUYER_PAY" or self._expired(trade):
            raise ValueError(f"trade {out_trade_no} cannot be paid in state {trade.trade_status}")
        trade.trade_status = "TRADE_SUCCESS"
        trade.buyer_id = buyer_id
        trade.send_pay_date = _now()
        return trade

    # -------------------------------------------------------------- notifications

    def notification(
        self, params: dict[str, str], *, sign_with: str | None = None
    ) -> tuple[dict[str, str], bytes]:
        """Headers and form body of an async notification, signed like AliPay (sorted pairs without
        sign and sign_type) unless `sign_with` names another private key."""
        params = {k: v for k, v in params.items() if v is not None}
        params.setdefault("sign_type", "RSA2")
        content = sorted_params_content(params, exclude=("sign", "sign_type"))
        params["sign"] = rsa_sha256_sign(sign_with or self.alipay_private_key, content)
        headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
        return headers, urlencode(params).encode()

    def trade_notification(self, out_trade_no: str, **overrides: str | None) -> tuple[dict[str, str], bytes]:
        trade = self.trades[out_trade_no]
        params: dict[str, str | None] = {
            "notify_time": _now(),
            "notify_type": "trade_status_sync",
            "notify_id": secrets.token_hex(16),
            "app_id": self.app_id,
            "charset": "utf-8",
            "version": "1.0",
            "trade_no": trade.trade_no,
            "out_trade_no": trade.out_trade_no,
            "buyer_id": trade.buyer_id,
            "seller_id": self.seller_id,
            "trade_status": trade.trade_status,
            "total_amount": str(trade.total_amount),
            "receipt_amount": str(trade.total_amount),
            "buyer_pay_amount": str(trade.total_amount),
            "subject": trade.subject,
            "gmt_create": _now(),
            "gmt_payment": trade.send_pay_date,
            "fund_bill_list": json.dumps(
                [{"amount": str(trade.total_amount), "fundChannel": "ALIPAYACCOUNT"}]
            ),
        }
        params.update(overrides)
        return self.notification(params)  # type: ignore[arg-type]

    def refund_notification(
        self, out_trade_no: str, out_request_no: str, **overrides: str | None
    ) -> tuple[dict[str, str], bytes]:
        trade = self.trades[out_trade_no]
        return self.trade_notification(
            out_trade_no,
            refund_fee=str(trade.refunded),  # cumulative, as AliPay sends it
            gmt_refund=datetime.now(CHINA).strftime(TIME_FORMAT) + ".123",
            out_biz_no=out_request_no,
            **overrides,
        )

    # -------------------------------------------------------------- the gateway

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        params = dict(request.query)
        if request.method == "POST":
            form = parse_qsl((await request.read()).decode("utf-8"), keep_blank_values=True)
            params.update(form)
        method = params.get("method", "")
        try:
            self._authenticate(params)
        except AlipayError as exc:
            # Like AliPay: a request that does not authenticate gets an unsigned error_response.
            return web.json_response({"error_response": exc.body})
        self.calls.append(method)

        async def work() -> web.StreamResponse:
            return self._dispatch(method, params)

        return await self.faults.run(request, method, work, self._fault_error)

    def _authenticate(self, params: dict[str, str]) -> None:
        if params.get("app_id") != self.app_id:
            raise AlipayError("40002", "Invalid Arguments", "isv.invalid-app-id", "无效的AppID参数")
        if params.get("sign_type") != "RSA2" or not params.get("sign"):
            raise AlipayError("40002", "Invalid Arguments", "isv.invalid-signature-type", "签名类型不正确")
        content = sorted_params_content(params, exclude=("sign",))
        if not rsa_sha256_verify(self.app_public_key, content, params["sign"]):
            raise AlipayError("40002", "Invalid Arguments", "isv.invalid-signature", "验签出错")
        for key, expected in (("format", "JSON"), ("charset", "utf-8"), ("version", "1.0")):
            if params.get(key, expected) != expected:
                raise AlipayError("40002", "Invalid Arguments", f"isv.invalid-{key}", key)
        try:
            datetime.strptime(params.get("timestamp", ""), TIME_FORMAT)
        except ValueError:
            raise AlipayError("40002", "Invalid Arguments", "isv.invalid-timestamp", "timestamp") from None

    def _dispatch(self, method: str, params: dict[str, str]) -> web.StreamResponse:
        try:
            biz = json.loads(params.get("biz_content") or "{}")
            if method in CREATING_METHODS:
                body = self._create(method, biz, params)
                if method in ("alipay.trade.page.pay", "alipay.trade.wap.pay", "alipay.trade.app.pay"):
                    return web.Response(
                        text="<html><body>AliPay cashier (fake)</body></html>", content_type="text/html"
                    )
            else:
                handler = {
                    "alipay.trade.query": self._query,
                    "alipay.trade.close": self._close,
                    "alipay.trade.refund": self._refund,
                    "alipay.trade.fastpay.refund.query": self._refund_query,
                }.get(method)
                if handler is None:
                    raise AlipayError("40002", "Invalid Arguments", "isv.invalid-method", "不存在的方法名")
                body = handler(biz)
            return self._answer(method, {"code": "10000", "msg": "Success", **body})
        except AlipayError as exc:
            if method in ("alipay.trade.page.pay", "alipay.trade.wap.pay", "alipay.trade.app.pay"):
                return web.Response(status=400, text=f"cashier error {exc}")
            return self._answer(method, exc.body)

    def _create(self, method: str, biz: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
        out_trade_no = str(biz.get("out_trade_no", ""))
        amount = _yuan(biz.get("total_amount"))
        if not out_trade_no or not biz.get("subject") or amount is None:
            raise AlipayError(
                "40002", "Invalid Arguments", "isv.invalid-parameter", "out_trade_no / subject / total_amount"
            )
        if biz.get("product_code", CREATING_METHODS[method]) != CREATING_METHODS[method]:
            raise business_error("ACQ.PRODUCT_CODE_ERROR", "product_code")
        time_expire = None
        if biz.get("time_expire"):
            time_expire = datetime.strptime(biz["time_expire"], TIME_FORMAT).replace(tzinfo=CHINA)
        existing = self.trades.get(out_trade_no)
        if existing is not None:
            if existing.trade_status in ("TRADE_SUCCESS", "TRADE_FINISHED"):
                raise business_error("ACQ.TRADE_HAS_SUCCESS", "交易已被支付")
            if existing.trade_status == "TRADE_CLOSED":
                raise business_error("ACQ.TRADE_HAS_CLOSE", "交易已经关闭")
            if existing.biz != biz:
                raise business_error("ACQ.CONTEXT_INCONSISTENT", "交易信息被篡改")
            return {"out_trade_no": out_trade_no, "qr_code": existing.qr_code}
        if time_expire is not None and time_expire < datetime.now(CHINA):
            raise business_error("ACQ.TRADE_HAS_CLOSE", "交易已经关闭")
        trade = AlipayTrade(
            out_trade_no=out_trade_no,
            total_amount=amount,
            subject=biz["subject"],
            product_code=CREATING_METHODS[method],
            notify_url=params.get("notify_url", ""),
            biz=biz,
            time_expire=time_expire,
        )
        self.trades[out_trade_no] = trade
        return {"out_trade_no": out_trade_no, "qr_code": trade.qr_code}

    def _trade(self, biz: dict[str, Any]) -> AlipayTrade:
        trade = self.trades.get(str(biz.get("out_trade_no", "")))
        if trade is None:
            raise business_error("ACQ.TRADE_NOT_EXIST", "交易不存在")
        self._expired(trade)
        return trade

    def _query(self, biz: dict[str, Any]) -> dict[str, Any]:
        trade = self._trade(biz)
        data: dict[str, Any] = {
            "trade_no": trade.trade_no,
            "out_trade_no": trade.out_trade_no,
            "trade_status": trade.trade_status,
            "total_amount": str(trade.total_amount),
            "buyer_pay_amount": str(trade.total_amount) if trade.send_pay_date else "0.00",
        }
        if trade.send_pay_date:
            data.update(
                send_pay_date=trade.send_pay_date, buyer_user_id=trade.buyer_id, buyer_logon_id="159****5620"
            )
        return data

    def _close(self, biz: dict[str, Any]) -> dict[str, Any]:
        trade = self._trade(biz)
        if trade.trade_status != "WAIT_BUYER_PAY":
            raise business_error("ACQ.TRADE_STATUS_ERROR", "交易状态不合法")
        trade.trade_status = "TRADE_CLOSED"
        return {"trade_no": trade.trade_no, "out_trade_no": trade.out_trade_no}

    def _refund(self, biz: dict[str, Any]) -> dict[str, Any]:
        trade = self._trade(biz)
        amount = _yuan(biz.get("refund_amount"))
        request_no = str(biz.get("out_request_no") or trade.out_trade_no)
        if amount is None:
            raise AlipayError("40002", "Invalid Arguments", "isv.invalid-parameter", "refund_amount")
        result = {
            "trade_no": trade.trade_no,
            "out_trade_no": trade.out_trade_no,
            "buyer_logon_id": "159****5620",
        }
        if request_no in trade.refunds:
            if trade.refunds[request_no] != amount:
                raise business_error("ACQ.REFUND_AMT_NOT_EQUAL_TOTAL", "退款金额与原请求不一致")
            return {**result, "fund_change": "N", "refund_fee": str(trade.refunded)}
        if trade.trade_status not in ("TRADE_SUCCESS",):
            raise business_error("ACQ.TRADE_STATUS_ERROR", "交易状态不合法")
        if trade.refunded + amount > trade.total_amount:
            raise business_error("ACQ.REFUND_AMT_RESTRICTION", "退款金额超限")
        trade.refunds[request_no] = amount
        if trade.refunded == trade.total_amount:
            trade.trade_status = "TRADE_CLOSED"
        return {**result, "fund_change": "Y", "refund_fee": str(trade.refunded), "gmt_refund_pay": _now()}

    def _refund_query(self, biz: dict[str, Any]) -> dict[str, Any]:
        trade = self._trade(biz)
        request_no = str(biz.get("out_request_no") or trade.out_trade_no)
        if request_no not in trade.refunds:
            return {"out_trade_no": trade.out_trade_no, "trade_no": trade.trade_no}
        return {
            "out_trade_no": trade.out_trade_no,
            "trade_no": trade.trade_no,
            "out_request_no": request_no,
            "total_amount": str(trade.total_amount),
            "refund_amount": str(trade.refunds[request_no]),
            "refund_status": "REFUND_SUCCESS",
        }

    # -------------------------------------------------------------- answers

    def _answer(self, method: str, member: dict[str, Any]) -> web.Response:
        """`{"<method>_response":<member>,"sign":"..."}` with the signature over the member's
        exact text, and spacing that differs from Python's default so a re-serializing verifier fails."""
        key = method.replace(".", "_") + "_response"
        raw = json.dumps(member, ensure_ascii=False, separators=(",", ":"))
        sign = rsa_sha256_sign(
            self.alipay_private_key, raw if not self.break_response_signatures else raw + " "
        )
        body = f'{{"{key}":{raw},"sign":"{sign}"}}' if not self.unsigned_responses else f'{{"{key}":{raw}}}'
        return web.Response(text=body, content_type="application/json", charset="utf-8")

    def _fault_error(self, status: int) -> web.Response:
        return web.Response(
            status=status, text=f"<html><body>{status}</body></html>", content_type="text/html"
        )

    def _expired(self, trade: AlipayTrade) -> bool:
        if (
            trade.trade_status == "WAIT_BUYER_PAY"
            and trade.time_expire
            and datetime.now(CHINA) > trade.time_expire
        ):
            trade.trade_status = "TRADE_CLOSED"
        return trade.trade_status == "TRADE_CLOSED"


def _yuan(value: Any) -> Decimal | None:
    """AliPay amounts: yuan as a string with at most two decimals, 0.01 .. 100000000."""
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, TypeError):
        return None
    if amount != amount.quantize(Decimal("0.01")) or not Decimal("0.01") <= amount <= Decimal(100000000):
        return None
    return amount


def _now() -> str:
    return datetime.now(CHINA).strftime(TIME_FORMAT)
