"""A fake WeChat Pay API v3 on 127.0.0.1: real wire formats, generated keys, stateful trades and
refunds, signed answers, signed and encrypted notifications, and fault knobs.

It checks what WeChat checks (the `WECHATPAY2-SHA256-RSA2048` request signature against the merchant
public key, the merchant serial, required fields per trade type) and answers like WeChat (signed
with the platform key, in certificate or public-key mode). Fault knobs come from `activities.gateways.fake_server`.
"""

from __future__ import annotations

import json
import re
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Literal

from aiohttp import web

from activities.gateways.fake_server import FakeServer, FaultPlan, certificate, keypair
from activities.gateways.signing import (
    aes_256_gcm_encrypt,
    certificate_serial_hex,
    line_message,
    random_nonce,
    rsa_sha256_sign,
    rsa_sha256_verify,
)
from activities.gateways.wechat_pay.settings import WechatPaySettings

CHINA = timezone(timedelta(hours=8))
_AUTH = re.compile(r'(\w+)="([^"]*)"')


# ---------------------------------------------------------------------------- WeChat Pay


@dataclass
class Trade:
    out_trade_no: str
    trade_type: str
    appid: str
    description: str
    total: int
    currency: str
    notify_url: str
    request: dict[str, Any]
    attach: str = ""
    time_expire: datetime | None = None
    trade_state: str = "NOTPAY"
    transaction_id: str = ""
    success_time: str | None = None
    openid: str = ""
    artifact: dict[str, str] = field(default_factory=dict)  # code_url / prepay_id / h5_url
    refunded: int = 0


@dataclass
class Refund:
    out_refund_no: str
    out_trade_no: str
    refund_id: str
    amount: int
    total: int
    status: str
    reason: str = ""
    create_time: str = ""
    success_time: str | None = None


class FakeWechatPay(FakeServer):
    def __init__(
        self,
        *,
        mode: Literal["certificate", "public_key"] = "certificate",
        mchid: str = "1900009191",
        appid: str = "wxd678efh567hg6787",
        merchant_key_slot: str = "wechat-merchant",
    ) -> None:
        super().__init__()
        self.mode = mode
        self.mchid = mchid
        self.appid = appid
        self.merchant_private_key, self.merchant_public_key = keypair(merchant_key_slot)
        self.merchant_serial_no = secrets.token_hex(20).upper()
        self.apiv3_key = secrets.token_hex(16)  # 32 ASCII characters, like the real one
        self._platform_slot = "wechat-platform"
        self.platform_private_key, self.platform_public_key = keypair(self._platform_slot)
        self.platform_certificate = certificate(self._platform_slot)
        self.public_key_id = "PUB_KEY_ID_" + secrets.token_hex(14).upper()
        self.trades: dict[str, Trade] = {}
        self.refunds: dict[str, Refund] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path) of every authenticated request
        self.certificate_downloads = 0
        self.faults = FaultPlan()
        self.refund_outcome: Literal["SUCCESS", "PROCESSING"] = "SUCCESS"
        self.break_response_signatures = False
        self.app.router.add_post("/v3/pay/transactions/{trade_type}", self._create)
        self.app.router.add_get("/v3/pay/transactions/out-trade-no/{out_trade_no}", self._query)
        self.app.router.add_post("/v3/pay/transactions/out-trade-no/{out_trade_no}/close", self._close)
        self.app.router.add_post("/v3/refund/domestic/refunds", self._refund)
        self.app.router.add_get("/v3/refund/domestic/refunds/{out_refund_no}", self._refund_query)
        self.app.router.add_get("/v3/certificates", self._certificates)

    # -------------------------------------------------------------- configuration for the adapter

    @property
    def platform_serial(self) -> str:
        return (
            certificate_serial_hex(self.platform_certificate)
            if self.mode == "certificate"
            else self.public_key_id
        )

    def settings(self, **overrides: Any) -> WechatPaySettings:
        values: dict[str, Any] = dict(
            mchid=self.mchid,
            appid=self.appid,
            merchant_serial_no=self.merchant_serial_no,
            private_key=self.merchant_private_key,
            apiv3_key=self.apiv3_key,
            api_base=self.base_url,
            notify_url="https://merchant.example/webhooks/wechat_pay",
        )
        if self.mode == "public_key":
            values.update(
                platform_public_key=self.platform_public_key, platform_public_key_id=self.public_key_id
            )
        values.update(overrides)
        return WechatPaySettings(**values)

    def gateway_section(self, **overrides: Any) -> dict[str, Any]:
        """The raw `[payment.wechat_pay]` config section for a running stack."""
        settings = self.settings(**overrides)
        section = settings.model_dump(mode="json", exclude_none=True, exclude={"private_key", "apiv3_key"})
        section.update(enabled=True, private_key=self.merchant_private_key, apiv3_key=self.apiv3_key)
        return section

    def rotate_platform_certificate(self) -> str:
        """A new platform key and certificate (WeChat rotates them); the adapter has to download it."""
        self._platform_slot += "+"
        self.platform_private_key, self.platform_public_key = keypair(self._platform_slot)
        self.platform_certificate = certificate(self._platform_slot)
        return self.platform_serial

    # -------------------------------------------------------------- the customer and WeChat's side

    def pay(self, out_trade_no: str, *, openid: str = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o") -> Trade:
        trade = self.trades[out_trade_no]
        if trade.trade_state != "NOTPAY" or self._expired(trade):
            raise ValueError(f"trade {out_trade_no} cannot be paid in state {trade.trade_state}")
        trade.trade_state = "SUCCESS"
        trade.transaction_id = "4200" + secrets.token_hex(12)
        trade.success_time = _now_text()
        trade.openid = openid
        return trade

    def set_trade_state(self, out_trade_no: str, state: str) -> None:
        self.trades[out_trade_no].trade_state = state

    def settle_refund(self, out_refund_no: str, status: str = "SUCCESS") -> Refund:
        refund = self.refunds[out_refund_no]
        refund.status = status
        if status == "SUCCESS":
            refund.success_time = _now_text()
        return refund

    # -------------------------------------------------------------- notifications

    def notification(
        self,
        event_type: str,
        resource: dict[str, Any],
        *,
        original_type: str,
        summary: str,
        event_id: str | None = None,
        timestamp: int | None = None,
        serial: str | None = None,
        apiv3_key: str | None = None,
        signature: str | None = None,
    ) -> tuple[dict[str, str], bytes]:
        """Headers and body of a notification as WeChat sends it: compact UTF-8 JSON, resource
        encrypted with the APIv3 key, signed by the platform key. Overrides forge bad ones."""
        nonce = random_nonce(12)
        associated_data = original_type
        envelope = {
            "id": event_id or str(uuid.uuid4()),
            "create_time": _now_text(),
            "resource_type": "encrypt-resource",
            "event_type": event_type,
            "summary": summary,
            "resource": {
                "original_type": original_type,
                "algorithm": "AEAD_AES_256_GCM",
                "ciphertext": aes_256_gcm_encrypt(
                    apiv3_key or self.apiv3_key,
                    nonce,
                    associated_data,
                    json.dumps(resource, ensure_ascii=False),
                ),
                "associated_data": associated_data,
                "nonce": nonce,
            },
        }
        body = json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()
        return self._signed_headers(body, timestamp=timestamp, serial=serial, signature=signature), body

    def payment_notification(self, out_trade_no: str, **kwargs: Any) -> tuple[dict[str, str], bytes]:
        return self.notification(
            "TRANSACTION.SUCCESS",
            self._trade_json(self.trades[out_trade_no]),
            original_type="transaction",
            summary="支付成功",
            **kwargs,
        )

    def refund_notification(self, out_refund_no: str, **kwargs: Any) -> tuple[dict[str, str], bytes]:
        refund = self.refunds[out_refund_no]
        trade = self.trades[refund.out_trade_no]
        resource = {
            "mchid": self.mchid,
            "out_trade_no": refund.out_trade_no,
            "transaction_id": trade.transaction_id,
            "out_refund_no": refund.out_refund_no,
            "refund_id": refund.refund_id,
            "refund_status": refund.status,
            "success_time": refund.success_time,
            "user_received_account": "招商银行信用卡0403",
            "amount": {
                "total": refund.total,
                "refund": refund.amount,
                "payer_total": refund.total,
                "payer_refund": refund.amount,
            },
        }
        event_type = {"SUCCESS": "REFUND.SUCCESS", "ABNORMAL": "REFUND.ABNORMAL", "CLOSED": "REFUND.CLOSED"}[
            refund.status
        ]
        return self.notification(event_type, resource, original_type="refund", summary="退款状态", **kwargs)

    # -------------------------------------------------------------- HTTP handlers

    async def _create(self, request: web.Request) -> web.StreamResponse:
        trade_type = request.match_info["trade_type"]
        return await self._guarded(
            request, f"create:{trade_type}", lambda body: self._do_create(trade_type, body)
        )

    async def _do_create(self, trade_type: str, body: dict[str, Any]) -> web.StreamResponse:
        if trade_type not in ("native", "jsapi", "h5", "app"):
            return self._error(404, "NOT_FOUND", "unknown trade type")
        required = ["appid", "mchid", "description", "out_trade_no", "notify_url", "amount"]
        missing = [k for k in required if not body.get(k)]
        if trade_type == "jsapi" and not (body.get("payer") or {}).get("openid"):
            missing.append("payer.openid")
        if trade_type == "h5":
            scene = body.get("scene_info") or {}
            if not scene.get("payer_client_ip") or not scene.get("h5_info"):
                missing.append("scene_info.h5_info")
        if missing:
            return self._error(400, "PARAM_ERROR", f"missing {', '.join(missing)}")
        if body["mchid"] != self.mchid or body["appid"] != self.appid:
            return self._error(400, "APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配")
        amount = body["amount"]
        if not isinstance(amount.get("total"), int) or amount["total"] <= 0:
            return self._error(400, "PARAM_ERROR", "amount.total must be a positive integer (fen)")
        if amount.get("currency", "CNY") != "CNY":  # direct merchants are paid in yuan only
            return self._error(400, "PARAM_ERROR", "amount.currency must be CNY")
        if not re.fullmatch(r"[0-9A-Za-z_\-|*]{6,32}", body["out_trade_no"]):
            return self._error(400, "PARAM_ERROR", "out_trade_no format")
        time_expire = None
        if "time_expire" in body:
            time_expire = datetime.fromisoformat(body["time_expire"])
            if time_expire.utcoffset() is None:
                return self._error(400, "PARAM_ERROR", "time_expire needs an offset")
        key = dict(body.items())
        existing = self.trades.get(body["out_trade_no"])
        if existing is not None:
            if existing.trade_state in ("SUCCESS", "REFUND"):
                return self._error(400, "ORDERPAID", "该订单已支付")
            if existing.trade_state == "CLOSED":
                return self._error(400, "ORDER_CLOSED", "订单已关闭")
            if existing.request != key or existing.trade_type != trade_type:
                return self._error(400, "INVALID_REQUEST", "201 商户订单号重复")
            return self._signed_json(200, existing.artifact)
        trade = Trade(
            out_trade_no=body["out_trade_no"],
            trade_type=trade_type,
            appid=body["appid"],
            description=body["description"],
            total=amount["total"],
            currency=amount.get("currency", "CNY"),
            notify_url=body["notify_url"],
            request=key,
            attach=body.get("attach", ""),
            time_expire=time_expire,
        )
        prepay_id = "wx" + secrets.token_hex(16)
        trade.artifact = {
            "native": {"code_url": f"weixin://wxpay/bizpayurl?pr={secrets.token_urlsafe(6)}"},
            "jsapi": {"prepay_id": prepay_id},
            "app": {"prepay_id": prepay_id},
            "h5": {
                "h5_url": f"https://wx.tenpay.com/cgi-bin/mmpayweb-bin/checkmweb?prepay_id={prepay_id}&package=1"
            },
        }[trade_type]
        self.trades[trade.out_trade_no] = trade
        return self._signed_json(200, trade.artifact)

    async def _query(self, request: web.Request) -> web.StreamResponse:
        out_trade_no = request.match_info["out_trade_no"]

        async def work(_: dict[str, Any]) -> web.StreamResponse:
            if request.query.get("mchid") != self.mchid:
                return self._error(400, "PARAM_ERROR", "mchid")
            trade = self.trades.get(out_trade_no)
            if trade is None:
                return self._error(404, "ORDER_NOT_EXIST", "订单不存在")
            self._expired(trade)
            return self._signed_json(200, self._trade_json(trade))

        return await self._guarded(request, "query", work)

    async def _close(self, request: web.Request) -> web.StreamResponse:
        out_trade_no = request.match_info["out_trade_no"]

        async def work(body: dict[str, Any]) -> web.StreamResponse:
            if body.get("mchid") != self.mchid:
                return self._error(400, "PARAM_ERROR", "mchid")
            trade = self.trades.get(out_trade_no)
            if trade is None:
                return self._error(404, "ORDER_NOT_EXIST", "订单不存在")
            if trade.trade_state == "USERPAYING":
                return self._signed_json(202, {"code": "USERPAYING", "message": "用户支付中"})
            if trade.trade_state in ("SUCCESS", "REFUND"):
                return self._error(400, "ORDERPAID", "订单已支付")
            trade.trade_state = "CLOSED"
            return self._signed_empty(204)

        return await self._guarded(request, "close", work)

    async def _refund(self, request: web.Request) -> web.StreamResponse:
        async def work(body: dict[str, Any]) -> web.StreamResponse:
            trade = self.trades.get(body.get("out_trade_no", ""))
            if trade is None:
                return self._error(404, "RESOURCE_NOT_EXISTS", "订单不存在")
            amount = body.get("amount") or {}
            refund_no = body.get("out_refund_no", "")
            if (
                not refund_no
                or not isinstance(amount.get("refund"), int)
                or amount["refund"] <= 0
                or amount.get("total") != trade.total
                or amount.get("currency") != "CNY"  # required on refunds, and yuan only
            ):
                return self._error(400, "PARAM_ERROR", "amount.refund / amount.total / amount.currency")
            existing = self.refunds.get(refund_no)
            if existing is not None:
                if existing.amount != amount["refund"] or existing.out_trade_no != trade.out_trade_no:
                    return self._error(400, "INVALID_REQUEST", "退款单号重复但参数不一致")
                return self._signed_json(200, self._refund_json(existing))
            if trade.trade_state not in ("SUCCESS", "REFUND"):
                return self._error(400, "INVALID_REQUEST", "订单未支付")
            if trade.refunded + amount["refund"] > trade.total:
                return self._error(400, "INVALID_REQUEST", "申请退款金额超过订单可退金额")
            trade.refunded += amount["refund"]
            trade.trade_state = "REFUND"
            refund = Refund(
                out_refund_no=refund_no,
                out_trade_no=trade.out_trade_no,
                refund_id="5030" + secrets.token_hex(12),
                amount=amount["refund"],
                total=trade.total,
                status=self.refund_outcome,
                reason=body.get("reason", ""),
                create_time=_now_text(),
                success_time=_now_text() if self.refund_outcome == "SUCCESS" else None,
            )
            self.refunds[refund_no] = refund
            return self._signed_json(200, self._refund_json(refund))

        return await self._guarded(request, "refund", work)

    async def _refund_query(self, request: web.Request) -> web.StreamResponse:
        out_refund_no = request.match_info["out_refund_no"]

        async def work(_: dict[str, Any]) -> web.StreamResponse:
            refund = self.refunds.get(out_refund_no)
            if refund is None:
                return self._error(404, "RESOURCE_NOT_EXISTS", "退款单不存在")
            return self._signed_json(200, self._refund_json(refund))

        return await self._guarded(request, "refund_query", work)

    async def _certificates(self, request: web.Request) -> web.StreamResponse:
        async def work(_: dict[str, Any]) -> web.StreamResponse:
            self.certificate_downloads += 1
            if self.mode != "certificate":
                return self._signed_json(200, {"data": []})
            nonce = random_nonce(12)
            expire = datetime.now(CHINA) + timedelta(days=365)
            item = {
                "serial_no": self.platform_serial,
                "effective_time": _now_text(),
                "expire_time": expire.replace(microsecond=0).isoformat(),
                "encrypt_certificate": {
                    "algorithm": "AEAD_AES_256_GCM",
                    "nonce": nonce,
                    "associated_data": "certificate",
                    "ciphertext": aes_256_gcm_encrypt(
                        self.apiv3_key, nonce, "certificate", self.platform_certificate
                    ),
                },
            }
            return self._signed_json(200, {"data": [item]})

        return await self._guarded(request, "certificates", work)

    async def _guarded(
        self,
        request: web.Request,
        operation: str,
        work: Callable[[dict[str, Any]], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        """Authenticate like WeChat (401 SIGN_ERROR), then run `work` under the fault plan."""
        raw = await request.read()
        problem = self._check_authorization(request, raw)
        if problem:
            return self._error(401, "SIGN_ERROR", problem)
        self.requests.append((request.method, request.path))
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            return self._error(400, "PARAM_ERROR", "body is not JSON")
        return await self.faults.run(request, operation, lambda: work(body), self._fault_error)

    def _check_authorization(self, request: web.Request, raw: bytes) -> str | None:
        header = request.headers.get("Authorization", "")
        scheme, _, params = header.partition(" ")
        if scheme != "WECHATPAY2-SHA256-RSA2048":
            return "missing or unknown authorization scheme"
        fields = dict(_AUTH.findall(params))
        if fields.get("mchid") != self.mchid:
            return "mchid does not match"
        if fields.get("serial_no") != self.merchant_serial_no:
            return "unknown merchant certificate serial"
        if abs(time.time() - int(fields.get("timestamp", "0"))) > 300:
            return "timestamp expired"
        message = line_message(
            request.method, request.raw_path, fields["timestamp"], fields.get("nonce_str", ""), raw.decode()
        )
        if not rsa_sha256_verify(self.merchant_public_key, message, fields.get("signature", "")):
            return "signature does not verify"
        return None

    # -------------------------------------------------------------- answers

    def _signed_headers(
        self,
        body: bytes,
        *,
        timestamp: int | None = None,
        serial: str | None = None,
        signature: str | None = None,
    ) -> dict[str, str]:
        ts = str(timestamp if timestamp is not None else int(time.time()))
        nonce = random_nonce()
        sign = signature or rsa_sha256_sign(self.platform_private_key, line_message(ts, nonce, body.decode()))
        return {
            "Wechatpay-Timestamp": ts,
            "Wechatpay-Nonce": nonce,
            "Wechatpay-Signature": sign,
            "Wechatpay-Serial": serial or self.platform_serial,
            "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
            "Request-ID": str(uuid.uuid4()),
            "Content-Type": "application/json",
        }

    def _signed_json(self, status: int, data: dict[str, Any]) -> web.Response:
        body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
        headers = self._signed_headers(body)
        if self.break_response_signatures:
            headers["Wechatpay-Signature"] = rsa_sha256_sign(self.platform_private_key, b"something else")
        return web.Response(status=status, body=body, headers=headers)

    def _signed_empty(self, status: int) -> web.Response:
        headers = self._signed_headers(b"")
        headers.pop("Content-Type")
        return web.Response(status=status, headers=headers)

    def _error(self, status: int, code: str, message: str) -> web.Response:
        body = json.dumps({"code": code, "message": message}, ensure_ascii=False).encode()
        return web.Response(status=status, body=body, content_type="application/json")

    def _fault_error(self, status: int) -> web.Response:
        if status == 429:
            return self._error(429, "FREQUENCY_LIMITED", "频率超限")
        return self._error(status, "SYSTEM_ERROR", "系统错误")

    # -------------------------------------------------------------- state views

    def _expired(self, trade: Trade) -> bool:
        """An unpaid trade past time_expire is closed, as WeChat does."""
        if trade.trade_state == "NOTPAY" and trade.time_expire and datetime.now(UTC) > trade.time_expire:
            trade.trade_state = "CLOSED"
        return trade.trade_state == "CLOSED"

    def _trade_json(self, trade: Trade) -> dict[str, Any]:
        data: dict[str, Any] = {
            "appid": trade.appid,
            "mchid": self.mchid,
            "out_trade_no": trade.out_trade_no,
            "trade_type": trade.trade_type.upper(),
            "trade_state": trade.trade_state,
            "trade_state_desc": {
                "NOTPAY": "未支付",
                "SUCCESS": "支付成功",
                "CLOSED": "已关闭",
                "REFUND": "转入退款",
                "USERPAYING": "用户支付中",
                "PAYERROR": "支付失败",
            }.get(trade.trade_state, ""),
            "attach": trade.attach,
            "amount": {"total": trade.total, "currency": trade.currency},
        }
        if trade.transaction_id:
            data.update(
                transaction_id=trade.transaction_id,
                bank_type="OTHERS",
                success_time=trade.success_time,
                payer={"openid": trade.openid},
            )
            data["amount"].update(payer_total=trade.total, payer_currency=trade.currency)
        return data

    def _refund_json(self, refund: Refund) -> dict[str, Any]:
        trade = self.trades[refund.out_trade_no]
        data = {
            "refund_id": refund.refund_id,
            "out_refund_no": refund.out_refund_no,
            "transaction_id": trade.transaction_id,
            "out_trade_no": refund.out_trade_no,
            "channel": "ORIGINAL",
            "user_received_account": "支付用户零钱",
            "create_time": refund.create_time,
            "status": refund.status,
            "amount": {
                "total": refund.total,
                "refund": refund.amount,
                "payer_total": refund.total,
                "payer_refund": refund.amount,
                "currency": trade.currency,
            },
        }
        if refund.success_time:
            data["success_time"] = refund.success_time
        return data


def _now_text() -> str:
    return datetime.now(CHINA).replace(microsecond=0).isoformat()
