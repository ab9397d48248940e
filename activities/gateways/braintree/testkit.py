"""The conformance kit of Braintree: the fake Braintree gateway, its sandbox nonces, its ledger of
sales and refunds (read as the fake stores them: decimals in the merchant account's currency) and
its signed notifications.

Braintree has no customer step on the server: 3-D Secure runs in the customer's browser before
the nonce reaches us, so there is no "action" method (the suite then checks that a payment asking
for 3-D Secure with a nonce that did not pass it is refused and moves nothing)."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, urlencode

from activities.gateways.braintree import GATEWAY_ID
from activities.gateways.braintree.fake import FakeBraintree
from activities.gateways.testkit import Delivery, GatewayKit, KitTraits, Ledger, LostAnswer, MethodKind
from workflows.domain import CardMethod, PaymentMethod
from workflows.gateway_io import GatewayResult
from workflows.money import Amount

_NONCES = {"success": "fake-valid-nonce", "decline": "fake-processor-declined-visa-nonce"}
_OPERATIONS = {"authorize": "create_transaction", "refund": "refund"}
_HELD = {"authorized"}
_CHARGED = {"submitted_for_settlement", "settling", "settled", "settlement_pending"}


class Kit(GatewayKit):
    id = GATEWAY_ID
    # Braintree signs no delivery time: a resent notification verifies forever (de-duplicated on
    # its event id by the workflow).
    traits = KitTraits(currency="USD", currencies={0: "JPY", 2: "USD", 3: "KWD"}, webhook_window_seconds=None)
    fake: FakeBraintree

    async def _start(self) -> Mapping[str, Any]:
        self.fake = await FakeBraintree().start()
        return self.fake.gateway_section()

    async def _stop(self) -> None:
        await self.fake.stop()

    def method(self, kind: MethodKind) -> PaymentMethod | None:
        nonce = _NONCES.get(kind)
        return CardMethod(token=nonce) if nonce else None

    def unauthenticated_method(self) -> PaymentMethod | None:
        return CardMethod(token="fake-three-d-secure-visa-failed-authentication-nonce")

    async def complete_action(self, payment_id: str, result: GatewayResult) -> dict[str, str]:
        raise ValueError("Braintree payments never wait on the customer at the server")

    def ledger(self, payment_id: str) -> Ledger:
        sales = self.fake.sales_for(payment_id)
        return Ledger(
            holds=[_ours(s.amount, s.currency) for s in sales if s.status in _HELD],
            charges=[_ours(s.amount, s.currency) for s in sales if s.status in _CHARGED],
            refunds=[
                _ours(r.amount, r.currency)
                for s in sales
                for r in self.fake.refunds_of(s)
                if r.status in _CHARGED | _HELD
            ],
        )

    def lose_next_answer(self, operation: LostAnswer) -> PaymentMethod:
        self.fake.faults.drop_next(match=_OPERATIONS[operation])
        return CardMethod(token=_NONCES["success"])

    def webhook(self, payment_id: str, *, timestamp: int | None = None) -> Delivery:
        [sale] = [s for s in self.fake.sales_for(payment_id) if s.status in _CHARGED]
        self.fake.settle(sale.id)
        return self.fake.emitted("transaction_settled", sale.id)

    def tamper(self, delivery: Delivery) -> Delivery:
        headers, body = delivery
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        xml = base64.b64decode(form["bt_payload"]).decode()
        start = xml.index("<amount>") + len("<amount>")
        end = xml.index("</amount>", start)
        form["bt_payload"] = base64.encodebytes((xml[:start] + "0.01" + xml[end:]).encode()).decode()
        return headers, urlencode(form).encode()


def _ours(amount: Any, currency: str) -> Amount:
    return Amount.of(amount, currency)
