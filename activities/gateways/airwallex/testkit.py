"""The conformance kit of Airwallex: the fake Airwallex server, its test cards (payment method
ids), its 3-D Secure page, its signed webhooks and its intents and refunds, read as decimals in the
intent's currency."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from activities.gateways.airwallex import GATEWAY_ID
from activities.gateways.airwallex.fake import CARD_3DS, CARD_DECLINED, CARD_SUCCESS, FakeAirwallex
from activities.gateways.airwallex.settings import WEBHOOK_TOLERANCE_SECONDS
from activities.gateways.airwallex.transform import encode
from activities.gateways.testkit import Delivery, GatewayKit, KitTraits, Ledger, LostAnswer, MethodKind
from workflows.domain import CardMethod, PaymentMethod
from workflows.gateway_io import GatewayResult
from workflows.money import Amount

_CARDS = {"success": CARD_SUCCESS, "decline": CARD_DECLINED, "action": CARD_3DS}
# The fake's operation names whose answer is lost: the confirm is where the card is charged.
_OPERATIONS = {"authorize": "confirm", "refund": "refund"}


class Kit(GatewayKit):
    id = GATEWAY_ID
    traits = KitTraits(
        currency="USD", currencies={0: "JPY", 2: "USD"}, webhook_window_seconds=WEBHOOK_TOLERANCE_SECONDS
    )
    fake: FakeAirwallex

    async def _start(self) -> Mapping[str, Any]:
        self.fake = FakeAirwallex()
        await self.fake.start()
        return self.fake.gateway_section()

    async def _stop(self) -> None:
        await self.fake.stop()

    def method(self, kind: MethodKind) -> PaymentMethod:
        return CardMethod(token=_CARDS[kind])

    async def complete_action(self, payment_id: str, result: GatewayResult) -> dict[str, str]:
        assert result.provider_payment_id is not None
        self.fake.complete_three_ds(result.provider_payment_id)
        return {"payment_intent_id": result.provider_payment_id}

    def ledger(self, payment_id: str) -> Ledger:
        intents = self.fake.intents_for(payment_id)
        return Ledger(
            holds=[Amount.of(i.amount, i.currency) for i in intents if i.status == "REQUIRES_CAPTURE"],
            charges=[Amount.of(i.captured_amount, i.currency) for i in intents if i.status == "SUCCEEDED"],
            refunds=[
                Amount.of(r.amount, r.currency)
                for r in self.fake.refunds_for(payment_id)
                if r.status != "FAILED"
            ],
        )

    def lose_next_answer(self, operation: LostAnswer) -> PaymentMethod:
        self.fake.faults.drop_next(match=_OPERATIONS[operation])
        return self.method("success")

    def webhook(self, payment_id: str, *, timestamp: int | None = None) -> Delivery:
        [event] = self.fake.events_of("payment_intent.succeeded", payment_id)
        return self.fake.delivery(event, timestamp_ms=None if timestamp is None else timestamp * 1000)

    def tamper(self, delivery: Delivery) -> Delivery:
        headers, body = delivery
        event = json.loads(body, parse_float=Decimal)
        event["data"]["object"]["captured_amount"] = 1
        return headers, encode(event)
