"""The conformance suite's control over the fake bank. The customer's action is the transfer itself
(booked at the fake bank); the ledger is what the bank's statement holds under the payment's
reference. The gateway never learns of the money (`confirmed_out_of_band`): the workflow does, from
an operator or the statement import."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from activities.gateways.bank_transfer import GATEWAY_ID
from activities.gateways.bank_transfer.fake import FakeBank
from activities.gateways.bank_transfer.reference import payment_reference
from activities.gateways.testkit import Delivery, GatewayKit, KitTraits, Ledger, LostAnswer, MethodKind
from workflows.domain import BankTransferMethod, PaymentMethod
from workflows.gateway_io import GatewayResult
from workflows.money import Amount


class Kit(GatewayKit):
    id = GATEWAY_ID
    traits = KitTraits(
        currency="EUR",
        currencies={0: "JPY", 2: "EUR", 3: "KWD"},
        webhook_window_seconds=None,
        confirmed_out_of_band=True,
    )

    async def _start(self) -> Mapping[str, Any]:
        self.bank = FakeBank()
        await self.bank.start()
        return self.bank.gateway_section()

    async def _stop(self) -> None:
        await self.bank.stop()

    def method(self, kind: MethodKind) -> PaymentMethod | None:
        return None if kind == "decline" else BankTransferMethod()

    async def complete_action(self, payment_id: str, result: GatewayResult) -> dict[str, str]:
        """The payer sends exactly what the instructions say, with the reference."""
        assert result.next_action is not None
        shown = result.next_action.data
        self.bank.transfer(Amount.of(shown["amount"], shown["currency"]), shown["reference"])
        return {}

    def ledger(self, payment_id: str) -> Ledger:
        reference = payment_reference(payment_id, self.bank.prefix)
        return Ledger(
            holds=[], charges=[line.amount for line in self.bank.credits_for(reference)], refunds=[]
        )

    def lose_next_answer(self, operation: LostAnswer) -> PaymentMethod:
        raise NotImplementedError("the bank transfer gateway calls no provider: no answer can be lost")

    def webhook(self, payment_id: str, *, timestamp: int | None = None) -> Delivery:
        """What a forger would post claiming the payment was paid: there is no genuine one."""
        body = {"type": "payment.succeeded", "payment_id": payment_id, "amount": "100.00", "currency": "EUR"}
        return {"Content-Type": "application/json"}, json.dumps(body).encode()

    def tamper(self, delivery: Delivery) -> Delivery:
        headers, body = delivery
        return headers, body.replace(b"100.00", b"1.00")
