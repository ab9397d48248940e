"""The conformance kit of PayPal: the fake PayPal, its approval page (opened like the payer's
browser would), its signed events, and its orders read with PayPal's own money rules."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx

from activities.gateways.paypal import GATEWAY_ID
from activities.gateways.paypal.fake import FakePayPal, parse_money
from activities.gateways.testkit import Delivery, GatewayKit, KitTraits, Ledger, LostAnswer, MethodKind
from workflows.domain import PaymentMethod, WalletMethod
from workflows.gateway_io import GatewayResult
from workflows.money import Amount

_PATHS = {"authorize": "POST /v2/checkout/orders", "refund": "/refund"}


def wallet() -> WalletMethod:
    return WalletMethod(wallet="paypal")


async def approve(url: str, *, funding: str = "balance") -> dict[str, str]:
    """What the payer's browser does with the approval link: open it, approve (paying with
    `funding`), and come back; returns the query PayPal sends them back to the shop with."""
    async with httpx.AsyncClient(follow_redirects=False) as browser:
        page = await browser.get(httpx.URL(url).copy_merge_params({"funding": funding}))
    if page.status_code == 302:
        return dict(httpx.URL(page.headers["location"]).params)
    if page.status_code == 200:
        # No return_url: the payer stays on PayPal's page; the shop still knows its order (`token`).
        return {"token": httpx.URL(url).params["token"]}
    raise ValueError(f"PayPal refused the approval ({page.status_code}): {page.text[:120]}")


class Kit(GatewayKit):
    id = GATEWAY_ID
    # Our window on PAYPAL-TRANSMISSION-TIME (PayPal itself checks no age).
    traits = KitTraits(
        currency="USD", currencies={0: "JPY", 2: "USD"}, webhook_window_seconds=600, finds_by_reference=False
    )
    fake: FakePayPal

    async def _start(self) -> Mapping[str, Any]:
        self.fake = await FakePayPal().start()
        return self.fake.gateway_section()

    async def _stop(self) -> None:
        await self.fake.stop()

    def method(self, kind: MethodKind) -> PaymentMethod | None:
        # Every PayPal payment waits for the payer's approval; a decline comes at the capture,
        # after it (there is no method that is refused up front).
        return None if kind == "decline" else wallet()

    async def complete_action(self, payment_id: str, result: GatewayResult) -> dict[str, str]:
        action = result.next_action
        if action is None or not action.url:
            raise ValueError("no approval link to open")
        return await approve(action.url)

    def ledger(self, payment_id: str) -> Ledger:
        holds: list[Amount] = []
        charges: list[Amount] = []
        refunds: list[Amount] = []
        for order in self.fake.orders_for(payment_id):
            payments = order["purchase_units"][0].get("payments") or {}
            holds += [
                _ours(a["amount"]) for a in payments.get("authorizations", []) if a["status"] == "CREATED"
            ]
            charges += [_ours(c["amount"]) for c in payments.get("captures", []) if c["status"] != "DECLINED"]
            refunds += [_ours(r["amount"]) for r in payments.get("refunds", []) if r["status"] == "COMPLETED"]
        return Ledger(holds=holds, charges=charges, refunds=refunds)

    def lose_next_answer(self, operation: LostAnswer) -> PaymentMethod:
        self.fake.faults.drop_next(match=_PATHS[operation])
        return wallet()

    def webhook(self, payment_id: str, *, timestamp: int | None = None) -> Delivery:
        [event] = [
            e
            for e in self.fake.events_of("PAYMENT.CAPTURE.COMPLETED")
            if e["resource"]["custom_id"] == payment_id
        ]
        return self.fake.sign(event, timestamp=timestamp)

    def tamper(self, delivery: Delivery) -> Delivery:
        headers, body = delivery
        event = json.loads(body)
        event["resource"]["amount"]["value"] = "0.01"
        return headers, json.dumps(event, separators=(",", ":")).encode()


def _ours(money: dict[str, str]) -> Amount:
    return Amount.of(parse_money(money), money["currency_code"])
