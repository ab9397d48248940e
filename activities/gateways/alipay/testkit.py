"""The conformance kit of AliPay: the fake AliPay gateway, precreate (QR) payments the customer
pays at the fake, its signed form notifications and its trades and refunds (in yuan)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlencode

from activities.gateways.alipay import GATEWAY_ID
from activities.gateways.alipay.fake import FakeAlipay
from activities.gateways.testkit import Delivery, GatewayKit, KitTraits, Ledger, LostAnswer, MethodKind
from workflows.domain import PaymentMethod, WalletMethod
from workflows.gateway_io import GatewayResult
from workflows.money import Amount

CURRENCY = "CNY"  # AliPay's amounts are yuan


class Kit(GatewayKit):
    id = GATEWAY_ID
    # AliPay signs no time into its notifications and resends them for about 25 hours.
    traits = KitTraits(currency=CURRENCY, currencies={2: CURRENCY}, webhook_window_seconds=None)
    fake: FakeAlipay

    async def _start(self) -> Mapping[str, Any]:
        self.fake = FakeAlipay()
        await self.fake.start()
        return self.fake.gateway_section(seller_id=self.fake.seller_id)

    async def _stop(self) -> None:
        await self.fake.stop()

    def method(self, kind: MethodKind) -> PaymentMethod | None:
        # "action": the PC page flow, whose trade AliPay creates only when the customer opens it.
        flow = {"success": "precreate", "action": "page"}.get(kind)
        return WalletMethod(wallet="alipay", flow=flow) if flow else None

    async def complete_action(self, payment_id: str, result: GatewayResult) -> dict[str, str]:
        action = result.next_action
        if action is not None and action.url:
            status = await self.fake.open(action.url)  # the customer's browser follows the link
            if status != 200:
                raise ValueError(f"AliPay refused to open the payment page ({status})")
        self.fake.pay(payment_id)  # out_trade_no is our payment id
        return {}

    def ledger(self, payment_id: str) -> Ledger:
        trade = self.fake.trades.get(payment_id)
        if trade is None:
            return Ledger(holds=[], charges=[], refunds=[])
        paid = trade.send_pay_date is not None
        return Ledger(
            holds=[],  # AliPay holds nothing: the customer pays in full
            charges=[_yuan(trade.total_amount)] if paid else [],
            refunds=[_yuan(amount) for amount in trade.refunds.values()],
        )

    def lose_next_answer(self, operation: LostAnswer) -> PaymentMethod:
        method = "alipay.trade.precreate" if operation == "authorize" else "alipay.trade.refund"
        self.fake.faults.drop_next(match=method)
        return WalletMethod(wallet="alipay", flow="precreate")

    def webhook(self, payment_id: str, *, timestamp: int | None = None) -> Delivery:
        return self.fake.trade_notification(payment_id)

    def tamper(self, delivery: Delivery) -> Delivery:
        headers, body = delivery
        params = dict(parse_qsl(body.decode(), keep_blank_values=True))
        params["total_amount"] = "0.01"
        return headers, urlencode(params).encode()


def _yuan(value: Decimal) -> Amount:
    return Amount.of(value, CURRENCY)
