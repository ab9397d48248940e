"""The conformance kit of WeChat Pay: the fake WeChat Pay server, Native QR payments the customer
pays at the fake, its signed and encrypted notifications and its trades and refunds (in fen)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from activities.gateways.base import Gateway
from activities.gateways.testkit import Delivery, GatewayKit, KitTraits, Ledger, LostAnswer, MethodKind
from activities.gateways.wechat_pay import GATEWAY_ID
from activities.gateways.wechat_pay.adapter import WechatPayGateway
from activities.gateways.wechat_pay.fake import FakeWechatPay
from activities.gateways.wechat_pay.settings import WechatPaySettings
from activities.gateways.wechat_pay.webhooks import TIMESTAMP_TOLERANCE_SECONDS
from workflows.domain import PaymentMethod, WalletMethod
from workflows.gateway_io import GatewayResult
from workflows.money import Amount


class Kit(GatewayKit):
    id = GATEWAY_ID
    traits = KitTraits(
        currency="CNY", currencies={2: "CNY"}, webhook_window_seconds=TIMESTAMP_TOLERANCE_SECONDS
    )
    fake: FakeWechatPay

    async def _start(self) -> Mapping[str, Any]:
        self.fake = FakeWechatPay()
        await self.fake.start()
        return self.fake.gateway_section()

    async def _stop(self) -> None:
        await self.fake.stop()

    def build_gateway(self, settings: BaseModel) -> Gateway:
        assert isinstance(settings, WechatPaySettings)
        # A clock read at each call, so that `later()` moves it.
        return WechatPayGateway(settings, clock=lambda: time.time())

    def method(self, kind: MethodKind) -> PaymentMethod | None:
        return None if kind == "decline" else WalletMethod(wallet="wechat_pay", flow="native")

    async def complete_action(self, payment_id: str, result: GatewayResult) -> dict[str, str]:
        self.fake.pay(payment_id)  # out_trade_no is our payment id
        return {}

    def ledger(self, payment_id: str) -> Ledger:
        trade = self.fake.trades.get(payment_id)
        if trade is None:
            return Ledger(holds=[], charges=[], refunds=[])
        paid = trade.trade_state in ("SUCCESS", "REFUND")
        return Ledger(
            holds=[],  # WeChat Pay holds nothing: the customer pays in full
            charges=[Amount(minor=trade.total, currency=trade.currency)] if paid else [],
            refunds=[
                Amount(minor=r.amount, currency=trade.currency)
                for r in self.fake.refunds.values()
                if r.out_trade_no == payment_id and r.status in ("SUCCESS", "PROCESSING")
            ],
        )

    def lose_next_answer(self, operation: LostAnswer) -> PaymentMethod:
        # The fake's operation names: `create:<trade type>`, `query`, `close`, `refund`, ...
        self.fake.faults.drop_next(match="create:native" if operation == "authorize" else "refund")
        return WalletMethod(wallet="wechat_pay", flow="native")

    def webhook(self, payment_id: str, *, timestamp: int | None = None) -> Delivery:
        return self.fake.payment_notification(payment_id, timestamp=timestamp)

    def tamper(self, delivery: Delivery) -> Delivery:
        # The resource is encrypted; what an attacker can change is the envelope, e.g. a fresh
        # event id to slip a re-sent notification past de-duplication.
        headers, body = delivery
        envelope = json.loads(body)
        envelope["id"] = str(uuid.uuid4())
        return headers, json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()
