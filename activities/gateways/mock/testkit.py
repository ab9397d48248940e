"""The conformance kit of the mock gateway: the adapter is its own provider, so the ledger is the
adapter's, the customer's 3-D Secure result travels in the return data, and the lost answer is the
`tok_timeout` test token. The mock has no wire: its ledger holds the amounts of the calls it got."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from activities.gateways.mock import GATEWAY_ID
from activities.gateways.mock.adapter import MockGateway
from activities.gateways.testkit import Delivery, GatewayKit, KitTraits, Ledger, LostAnswer, MethodKind
from workflows.domain import CardMethod, PaymentMethod, RefundStatus
from workflows.gateway_io import GatewayEventKind, GatewayPaymentStatus, GatewayResult

_TOKENS = {"success": "tok_visa", "decline": "tok_chargeDeclined", "action": "tok_threeDSecure2Required"}


class Kit(GatewayKit):
    id = GATEWAY_ID
    traits = KitTraits(currency="USD", currencies={0: "JPY", 2: "USD", 3: "KWD"}, webhook_window_seconds=300)

    async def _start(self) -> Mapping[str, Any]:
        return {
            "enabled": True,
            "currencies": ["USD", "EUR", "JPY", "KWD", "CNY"],
            "webhook_secret": "whsec_mock_conformance",
        }

    @property
    def mock(self) -> MockGateway:
        assert isinstance(self.gateway, MockGateway)
        return self.gateway

    def method(self, kind: MethodKind) -> PaymentMethod:
        return CardMethod(token=_TOKENS[kind])

    async def complete_action(self, payment_id: str, result: GatewayResult) -> dict[str, str]:
        return {"three_ds_result": "succeeded"}  # the mock reads the outcome from the return data

    def ledger(self, payment_id: str) -> Ledger:
        charges = self.mock.charges_for(payment_id)
        return Ledger(
            holds=[
                c.amount.with_minor(c.authorized_minor)
                for c in charges
                if c.status is GatewayPaymentStatus.AUTHORIZED
            ],
            charges=[c.amount.with_minor(c.captured_minor) for c in charges if c.captured_minor],
            refunds=[
                c.amount.with_minor(r.amount_minor)
                for c in charges
                for r in c.refunds.values()
                if r.status is not RefundStatus.FAILED
            ],
        )

    def lose_next_answer(self, operation: LostAnswer) -> PaymentMethod:
        return CardMethod(token="tok_timeout")  # loses the first answer of every call it makes

    def webhook(self, payment_id: str, *, timestamp: int | None = None) -> Delivery:
        event = self.mock.webhook_for(payment_id, GatewayEventKind.PAYMENT_SUCCEEDED)
        return self.mock.build_webhook(event, timestamp=timestamp)

    def tamper(self, delivery: Delivery) -> Delivery:
        headers, body = delivery
        payload = json.loads(body)
        payload["data"]["amount_minor"] = 1
        return headers, json.dumps(payload, indent=2).encode()
