"""The conformance kit of Stripe: the fake Stripe server, its test cards, its 3-D Secure page, its
signed events and its charges, read with the fake's own currency rules (not the adapter's)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from activities.gateways.stripe import GATEWAY_ID
from activities.gateways.stripe.fake import THREE_DECIMAL, ZERO_DECIMAL, FakeStripe
from activities.gateways.testkit import Delivery, GatewayKit, KitTraits, Ledger, LostAnswer, MethodKind
from workflows.domain import CardMethod, PaymentMethod
from workflows.gateway_io import GatewayResult
from workflows.money import Amount

_CARDS = {
    "success": "pm_card_visa",
    "decline": "pm_card_chargeDeclined",
    "action": "pm_card_threeDSecure2Required",
}

_PATHS = {"authorize": "/v1/payment_intents", "refund": "/v1/refunds"}


class Kit(GatewayKit):
    id = GATEWAY_ID
    traits = KitTraits(currency="USD", currencies={0: "JPY", 2: "USD", 3: "KWD"}, webhook_window_seconds=300)
    fake: FakeStripe

    async def _start(self) -> Mapping[str, Any]:
        self.fake = await FakeStripe().start()
        return self.fake.gateway_section()

    async def _stop(self) -> None:
        await self.fake.stop()

    def method(self, kind: MethodKind) -> PaymentMethod:
        return CardMethod(token=_CARDS[kind])

    async def complete_action(self, payment_id: str, result: GatewayResult) -> dict[str, str]:
        assert result.provider_payment_id is not None
        self.fake.complete_three_ds(result.provider_payment_id)
        return {}

    def ledger(self, payment_id: str) -> Ledger:
        charges = self.fake.charges_for(payment_id)
        intents = {pi["id"] for pi in self.fake.intents_for(payment_id)}
        return Ledger(
            holds=[_ours(c["amount"], c["currency"]) for c in charges if not c["captured"]],
            charges=[_ours(c["amount_captured"], c["currency"]) for c in charges if c["captured"]],
            refunds=[
                _ours(r["amount"], r["currency"])
                for r in self.fake.refunds.values()
                if r["payment_intent"] in intents and r["status"] != "failed"
            ],
        )

    def lose_next_answer(self, operation: LostAnswer) -> PaymentMethod:
        self.fake.drop_response_next(path=_PATHS[operation])
        return self.method("success")

    def webhook(self, payment_id: str, *, timestamp: int | None = None) -> Delivery:
        [event] = [
            e
            for e in self.fake.events_of("payment_intent.succeeded")
            if e["data"]["object"]["metadata"].get("durapay_payment_id") == payment_id
        ]
        return self.fake.encode_event(event, timestamp=timestamp)

    def tamper(self, delivery: Delivery) -> Delivery:
        headers, body = delivery
        event = json.loads(body)
        event["data"]["object"]["amount_received"] = 1
        return headers, json.dumps(event, indent=2).encode()


def _ours(stripe_amount: int, currency: str) -> Amount:
    """A Stripe integer as Stripe reads it (https://stripe.com/docs/currencies), as our Amount."""
    decimals = 0 if currency in ZERO_DECIMAL else 3 if currency in THREE_DECIMAL else 2
    return Amount.of(Decimal(stripe_amount).scaleb(-decimals), currency.upper())
