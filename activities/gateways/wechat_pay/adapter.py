"""WeChat Pay API v3 (direct merchant): Native QR, JSAPI, H5 and App payments, refunds, notifications.

Wire protocol (see /work/shared/docs/provider-protocols.md, section 2):
- every request is signed `WECHATPAY2-SHA256-RSA2048` with the merchant API private key over
  `METHOD\\nPATH?QUERY\\nts\\nnonce\\nbody\\n`; every 2xx answer and every notification is signed by
  WeChat Pay over `ts\\nnonce\\nbody\\n`, with the platform key named by `Wechatpay-Serial` (a platform
  certificate serial, fetched from `/v3/certificates`, or a `PUB_KEY_ID_...` public key);
- notifications carry their payload AEAD_AES_256_GCM-encrypted with the merchant's APIv3 key;
- idempotency is by business number: `out_trade_no` is our payment id, `out_refund_no` is
  `<payment id>-<refund id>` (unique per merchant, as WeChat requires, and reversible).

WeChat Pay charges the customer when they pay: there is no authorization hold, so `authorize` is a
sale that waits for the customer (REQUIRES_ACTION), and manual capture is not supported.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import httpx

from activities.gateways.base import (
    Gateway,
    GatewayConfigError,
    GatewayInvalidRequest,
    GatewayOutcomeUnknown,
    GatewayTransientError,
    NotSupported,
    WebhookAck,
    WebhookVerificationError,
    required_field,
)
from activities.gateways.http import HttpTransport, raise_rejection
from activities.gateways.signing import (
    DecryptionError,
    aes_256_gcm_decrypt,
    certificate_serial_hex,
    certificate_validity,
    line_message,
    random_nonce,
    rsa_sha256_sign,
)
from activities.gateways.wechat_pay import GATEWAY_ID as WECHAT_PAY
from activities.gateways.wechat_pay.settings import WechatPaySettings
from activities.gateways.wechat_pay.transform import (
    FLOWS,
    notification_event,
    order_request,
    out_refund_no_for,
    out_trade_no_for,
    refund_failed,
    refund_request,
    refund_result,
    trade_result,
)
from activities.gateways.wechat_pay.webhooks import (
    AUTH_SCHEME,
    UnknownPlatformSerial,
    decrypted_notification,
    verified_signature,
)
from workflows.domain import GatewayProfile, NextAction, NextActionType, WalletMethod
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
from workflows.money import Amount

logger = logging.getLogger(__name__)

# An unknown serial may trigger a certificate download, but a stream of forged serials must not
# turn into a stream of downloads.
MIN_REFRESH_INTERVAL_SECONDS = 60.0

_PATH_FOR_FLOW = {flow: f"/v3/pay/transactions/{flow}" for flow in FLOWS}

# Create-order refusals that mean "this out_trade_no already has a history": the truth is in a
# query (paid already after a lost response, or closed), not in the refusal.
_ORDER_STATE_CONFLICTS = frozenset(
    {"ORDERPAID", "ORDER_PAID", "ORDERCLOSED", "ORDER_CLOSED", "OUT_TRADE_NO_USED"}
)


class WechatPayGateway(Gateway):
    def __init__(
        self,
        settings: WechatPaySettings,
        *,
        transport: HttpTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._transport = transport or HttpTransport(
            "WeChat Pay",
            settings.api_base,
            settings.http,
            headers={"Accept": "application/json", "User-Agent": "durapay"},
        )
        self._clock = clock
        # serial (certificate serial in upper-case hex, or PUB_KEY_ID_...) -> PEM
        self._platform_keys: dict[str, str] = {}
        if settings.platform_public_key and settings.platform_public_key_id:
            self._platform_keys[settings.platform_public_key_id] = settings.platform_public_key
        for pem in settings.platform_certificates:
            self._platform_keys[certificate_serial_hex(pem)] = pem
        self._refresh_lock = asyncio.Lock()
        self._last_attempt: float | None = None  # rate-limits downloads
        self._last_success: float | None = None  # ages the certificates we hold
        self._background: set[asyncio.Task[Any]] = set()

    @property
    def profile(self) -> GatewayProfile:
        return GatewayProfile(
            id=WECHAT_PAY,
            name="WeChat Pay",
            methods=["wallet:wechat_pay"],
            currencies=[self._settings.currency],
            min_minor=1,
            supports_partial_capture=False,
            # The customer pays in full when they scan or confirm; there is no hold to capture later.
            supports_manual_capture=False,
            # No `notified_actions`: every flow is polled. API v3 notifies a success only; a failed
            # or closed order is known only by querying it.
        )

    # ------------------------------------------------------------------ payments

    async def authorize(self, call: AuthorizeCall) -> GatewayResult:
        flow = self._flow(call)
        if not call.capture:
            raise NotSupported(
                "WeChat Pay takes the money when the customer pays: manual capture is not supported"
            )
        self._check_currency(call.amount)
        out_trade_no = out_trade_no_for(call.payment_id)
        body = order_request(call, flow, self._settings)

        response = await self._send("POST", _PATH_FOR_FLOW[flow], body, mutating=True)
        if response.status_code >= 400:
            code, message = _error_of(response)
            if code in _ORDER_STATE_CONFLICTS:
                known = await self._query_trade(out_trade_no)
                if known.status is not GatewayPaymentStatus.NOT_FOUND:
                    return known
            raise_rejection(response, code=code, message=message)
        data = _json(response)
        action = self._next_action(flow, data, call)
        return GatewayResult(
            status=GatewayPaymentStatus.REQUIRES_ACTION,
            next_action=action,
            provider_response={"trade_type": flow.upper(), "out_trade_no": out_trade_no},
        )

    def _next_action(self, flow: str, data: Mapping[str, Any], call: AuthorizeCall) -> NextAction:
        expires_at = call.expires_at
        if flow == "native":
            return NextAction(
                type=NextActionType.DISPLAY_QR_CODE,
                qr_code=required_field(data, "code_url", "WeChat Pay"),
                expires_at=expires_at,
            )
        if flow == "h5":
            url = required_field(data, "h5_url", "WeChat Pay")
            if call.return_url:
                # WeChat sends the customer back here after the cashier page (documented parameter).
                url += ("&" if "?" in url else "?") + urlencode({"redirect_url": call.return_url})
            return NextAction(type=NextActionType.REDIRECT_TO_URL, url=url, expires_at=expires_at)
        prepay_id = required_field(data, "prepay_id", "WeChat Pay")
        timestamp = str(int(self._clock()))
        nonce = random_nonce()
        if flow == "jsapi":
            package = f"prepay_id={prepay_id}"
            params = {
                "appId": self._settings.appid,
                "timeStamp": timestamp,
                "nonceStr": nonce,
                "package": package,
                "signType": "RSA",
                "paySign": self._sign(line_message(self._settings.appid, timestamp, nonce, package)),
            }
        else:
            params = {
                "appid": self._settings.appid,
                "partnerid": self._settings.mchid,
                "prepayid": prepay_id,
                "package": "Sign=WXPay",
                "noncestr": nonce,
                "timestamp": timestamp,
                "sign": self._sign(line_message(self._settings.appid, timestamp, nonce, prepay_id)),
            }
        return NextAction(type=NextActionType.USE_SDK, data=params, expires_at=expires_at)

    async def capture(self, call: CaptureCall) -> GatewayResult:
        """Nothing to capture: a paid trade already moved the money, anything else cannot be captured."""
        result = await self._query_trade(out_trade_no_for(call.payment_id))
        if result.status is GatewayPaymentStatus.SUCCEEDED:
            return result
        raise NotSupported(
            f"WeChat Pay has no separate capture (trade is {result.provider_response.get('trade_state', result.status.value)})"
        )

    async def cancel(self, call: CancelCall) -> GatewayResult:
        out_trade_no = out_trade_no_for(call.payment_id)
        response = await self._send(
            "POST",
            f"/v3/pay/transactions/out-trade-no/{quote(out_trade_no)}/close",
            {"mchid": self._settings.mchid},
            mutating=True,
        )
        if response.status_code == 202:
            # USERPAYING: the payer is entering their password. WeChat says to wait and look again;
            # the activity's retry does exactly that, with the same (idempotent) close.
            raise GatewayTransientError("WeChat Pay: the payer is paying right now; close again shortly")
        if response.status_code < 300:  # 204 No Content: closed
            return GatewayResult(
                status=GatewayPaymentStatus.CANCELLED, provider_response={"trade_state": "CLOSED"}
            )
        if response.status_code not in (401, 403):
            # Already paid, already closed, never created: the query says which.
            known = await self._query_trade(out_trade_no)
            if known.status in (GatewayPaymentStatus.NOT_FOUND, GatewayPaymentStatus.CANCELLED):
                return GatewayResult(
                    status=GatewayPaymentStatus.CANCELLED, provider_response=known.provider_response
                )
            if known.status in (GatewayPaymentStatus.SUCCEEDED, GatewayPaymentStatus.DECLINED):
                return known
            raise GatewayTransientError(
                f"WeChat Pay refused to close a trade in state {known.provider_response.get('trade_state')}"
            )
        code, message = _error_of(response)
        raise_rejection(response, code=code, message=message)

    async def lookup(self, call: LookupCall) -> GatewayResult:
        return await self._query_trade(out_trade_no_for(call.payment_id))

    async def _query_trade(self, out_trade_no: str) -> GatewayResult:
        path = f"/v3/pay/transactions/out-trade-no/{quote(out_trade_no)}?" + urlencode(
            {"mchid": self._settings.mchid}
        )
        response = await self._send("GET", path, None, mutating=False)
        if response.status_code == 404 or (
            response.status_code < 500 and _error_of(response)[0] == "ORDER_NOT_EXIST"
        ):
            return GatewayResult(
                status=GatewayPaymentStatus.NOT_FOUND, provider_response={"trade_state": "NOT_FOUND"}
            )
        if response.status_code >= 400:
            code, message = _error_of(response)
            raise_rejection(response, code=code, message=message)
        return trade_result(_json(response))

    # ------------------------------------------------------------------ refunds

    async def refund(self, call: RefundCall) -> RefundResult:
        self._check_currency(call.amount)
        out_trade_no = out_trade_no_for(call.payment_id)
        out_refund_no_for(call.payment_id, call.refund_id)  # refused before anything is sent
        # WeChat wants the order total beside the refund amount; the trade itself is the authority.
        trade = await self._send(
            "GET",
            f"/v3/pay/transactions/out-trade-no/{quote(out_trade_no)}?"
            + urlencode({"mchid": self._settings.mchid}),
            None,
            mutating=False,
        )
        if trade.status_code >= 400:
            code, message = _error_of(trade)
            if trade.status_code == 401:
                raise_rejection(trade, code=code, message=message)
            return refund_failed(
                call.refund_id, code or "ORDER_NOT_EXIST", message or "the payment is not known to WeChat Pay"
            )
        total = int(_json(trade)["amount"]["total"])
        body = refund_request(call, total, self._settings)
        response = await self._send("POST", "/v3/refund/domestic/refunds", body, mutating=True)
        if response.status_code >= 400:
            code, message = _error_of(response)
            if response.status_code == 401:  # our signature or key: an operator must fix it
                raise_rejection(response, code=code, message=message)
            # Refused for a business reason (balance - a 403 NOT_ENOUGH -, amount, state): final
            # for this refund id.
            return refund_failed(call.refund_id, code or "REFUND_REJECTED", message or "refund refused")
        return refund_result(call.refund_id, _json(response))

    async def lookup_refund(self, call: RefundLookupCall) -> RefundResult:
        out_refund_no = out_refund_no_for(call.payment_id, call.refund_id)
        response = await self._send(
            "GET", f"/v3/refund/domestic/refunds/{quote(out_refund_no)}", None, mutating=False
        )
        if response.status_code == 404:
            return refund_failed(
                call.refund_id, "RESOURCE_NOT_EXISTS", "WeChat Pay has no refund under this number"
            )
        if response.status_code >= 400:
            code, message = _error_of(response)
            raise_rejection(response, code=code, message=message)
        return refund_result(call.refund_id, _json(response))

    # ------------------------------------------------------------------ notifications

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[GatewayEvent]:
        try:
            serial = verified_signature(headers, body, self._platform_keys, self._clock())
        except UnknownPlatformSerial:
            # Never skip verification; fetch the certificates so that WeChat's retry (15 s later)
            # finds the new key.
            self._refresh_in_background()
            raise
        event_id, event_type, envelope, data = decrypted_notification(body, self._settings)
        logger.debug("WeChat Pay notification %s (%s) verified with %s", event_id, event_type, serial)
        try:
            return [notification_event(event_id, event_type, envelope, data, self._settings.currency)]
        except (KeyError, ValueError, TypeError) as exc:
            # Genuine but not what WeChat documents (e.g. no amount): refuse it rather than fail
            # with a 500 whose traceback would carry the decrypted payload; WeChat will resend.
            raise WebhookVerificationError(f"unexpected {event_type} content") from exc

    def webhook_ack(self) -> WebhookAck:
        # "HTTP 200 or 204 with no body means success."
        return WebhookAck(status=204, body=b"")

    def webhook_reject(self) -> WebhookAck:
        # The documented failure answer; anything but 2xx makes WeChat retry (15s, 15s, 30s, 3m,
        # ... over 24h).
        body = json.dumps({"code": "FAIL", "message": "verification failed"}).encode()
        return WebhookAck(status=400, body=body, content_type="application/json")

    # ------------------------------------------------------------------ platform certificates

    async def refresh_platform_certificates(self) -> list[str]:
        """Download the platform certificates (payload encrypted with the APIv3 key) and keep the
        valid ones by serial. Returns the serials now known. Worth calling at start in certificate
        mode; an unknown serial also triggers it, at most once a minute."""
        async with self._refresh_lock:
            return await self._refresh_locked()

    async def _refresh_locked(self) -> list[str]:
        self._last_attempt = time.monotonic()
        response = await self._send("GET", "/v3/certificates", None, mutating=False, verify=False)
        if response.status_code >= 400:
            code, message = _error_of(response)
            raise_rejection(response, code=code, message=message)
        now = datetime.now(UTC)
        downloaded: dict[str, str] = {}
        for item in _json(response).get("data", []):
            enc = item["encrypt_certificate"]
            try:
                pem = aes_256_gcm_decrypt(
                    self._settings.apiv3_key.get_secret_value(),
                    enc["nonce"],
                    enc.get("associated_data") or "",
                    enc["ciphertext"],
                ).decode()
            except DecryptionError as exc:
                raise GatewayConfigError(
                    "WeChat Pay certificates did not decrypt: is apiv3_key right?"
                ) from exc
            serial = certificate_serial_hex(pem)
            if serial != str(item.get("serial_no", "")).upper():
                raise GatewayConfigError(
                    "a WeChat Pay certificate does not carry the serial it was listed under"
                )
            not_before, not_after = certificate_validity(pem)
            if not_before <= now <= not_after:
                downloaded[serial] = pem
        # The download proves itself by decrypting with our APIv3 key; its own signature must then
        # verify with one of the certificates it delivered (or one we already trust).
        try:
            verified_signature(
                response.headers, response.content, {**self._platform_keys, **downloaded}, self._clock()
            )
        except WebhookVerificationError as exc:
            raise GatewayTransientError(
                f"WeChat Pay certificate download: response signature rejected ({exc})"
            ) from exc
        self._platform_keys.update(downloaded)
        self._last_success = time.monotonic()
        logger.info("WeChat Pay platform certificates: %s", ", ".join(sorted(downloaded)) or "none valid")
        return sorted(self._platform_keys)

    async def _ensure_platform_key(self, serial: str) -> None:
        """Before verifying an answer: download certificates when the serial is new or the last
        download is old (rate-limited, so a bad serial cannot turn every call into two)."""
        if not self._settings.fetch_platform_certificates:
            return
        async with self._refresh_lock:
            if (serial not in self._platform_keys or self._certificates_stale()) and self._refresh_due():
                await self._refresh_locked()

    def _refresh_in_background(self) -> None:
        if not self._settings.fetch_platform_certificates or not self._refresh_due():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._last_attempt = time.monotonic()
        task = loop.create_task(self._refresh_quietly())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _refresh_quietly(self) -> None:
        try:
            await self.refresh_platform_certificates()
        except Exception:
            logger.warning("WeChat Pay platform certificate refresh failed", exc_info=True)

    def _refresh_due(self) -> bool:
        return (
            self._last_attempt is None
            or time.monotonic() - self._last_attempt >= MIN_REFRESH_INTERVAL_SECONDS
        )

    def _certificates_stale(self) -> bool:
        return (
            self._last_success is None
            or time.monotonic() - self._last_success >= self._settings.certificate_refresh_seconds
        )

    # ------------------------------------------------------------------ transport

    async def _send(
        self, method: str, path: str, body: Mapping[str, Any] | None, *, mutating: bool, verify: bool = True
    ) -> httpx.Response:
        content = (
            b"" if body is None else json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        )
        headers = {"Content-Type": "application/json"} if body is not None else {}
        request = self._transport.build_request(method, path, content=content, headers=headers)
        request.headers["Authorization"] = self.authorization(
            method,
            request.url.raw_path.decode(),
            content.decode(),
            timestamp=int(self._clock()),
            nonce=random_nonce(),
        )
        response = await self._transport.send(request)
        if verify and 200 <= response.status_code < 300:
            await self._ensure_platform_key(response.headers.get("Wechatpay-Serial", ""))
            try:
                verified_signature(response.headers, response.content, self._platform_keys, self._clock())
            except WebhookVerificationError as exc:
                # Not proof that nothing happened: a mutating call may have gone through.
                error = GatewayOutcomeUnknown if mutating else GatewayTransientError
                raise error(
                    f"WeChat Pay {method} {request.url.path}: response signature rejected ({exc})"
                ) from exc
        return response

    def authorization(
        self, method: str, path_and_query: str, body: str, *, timestamp: int, nonce: str
    ) -> str:
        """The `Authorization` header value for one request."""
        signature = self._sign(line_message(method, path_and_query, str(timestamp), nonce, body))
        return (
            f'{AUTH_SCHEME} mchid="{self._settings.mchid}",nonce_str="{nonce}",signature="{signature}",'
            f'timestamp="{timestamp}",serial_no="{self._settings.merchant_serial_no}"'
        )

    def _sign(self, message: str) -> str:
        return rsa_sha256_sign(self._settings.private_key.get_secret_value(), message)  # type: ignore[union-attr]

    # ------------------------------------------------------------------ checks

    def _flow(self, call: AuthorizeCall) -> str:
        method = call.method
        if not isinstance(method, WalletMethod) or method.wallet != "wechat_pay":
            raise GatewayInvalidRequest("WeChat Pay takes wallet payments with wallet=wechat_pay")
        flow = method.flow or "native"
        if flow not in FLOWS:
            raise GatewayInvalidRequest(f"WeChat Pay has no {flow!r} flow; use one of {', '.join(FLOWS)}")
        return flow

    def _check_currency(self, amount: Amount) -> None:
        if amount.currency != self._settings.currency:
            raise GatewayInvalidRequest(
                f"WeChat Pay is configured for {self._settings.currency}, not {amount.currency}"
            )

    async def aclose(self) -> None:
        for task in list(self._background):
            task.cancel()
        await self._transport.aclose()


def build(settings: WechatPaySettings) -> WechatPayGateway:
    """The registry's factory."""
    return WechatPayGateway(settings)


def _error_of(response: httpx.Response) -> tuple[str | None, str | None]:
    """WeChat's error body: `{"code": "PARAM_ERROR", "message": "..."}` (absent from proxies' 5xx)."""
    try:
        data = response.json()
    except ValueError:
        return None, None
    if not isinstance(data, dict):
        return None, None
    return (
        str(data["code"]) if "code" in data else None,
        str(data["message"]) if "message" in data else None,
    )


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError as exc:
        raise GatewayOutcomeUnknown(f"WeChat Pay {response.request.url.path}: answer is not JSON") from exc
    if not isinstance(data, dict):
        raise GatewayOutcomeUnknown(f"WeChat Pay {response.request.url.path}: unexpected answer")
    return data
