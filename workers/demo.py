"""The demo: one payment per flow, pushed through the real HTTP API, checked against the outcome
each flow must have, printed as a table with links to the payments' workflows in the Temporal UI.

It runs against a live worker + API with the mock gateway enabled (`durapay dev`, `durapay demo`,
tests). The webhook flow settles the payment at the mock "provider", which lives in the worker's
process: so the demo runs in that process too, and takes the mock gateway object. Given the fake
providers (workers/fake_providers/local.py), it adds their flows: Stripe card and 3-D Secure payments, a
WeChat Pay Native QR payment and an AliPay page payment, both paid by the fake's signed notification.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from activities.gateways.mock.adapter import MockGateway
from workers.fake_providers.local import ALIPAY, STRIPE, WECHAT_PAY, FakeProviders

# What the demo's flows rely on; `durapay dev` / `durapay demo` load these under the user's own
# configuration (which still wins): a short customer-action timeout so the 3-D Secure timeout
# flow ends within seconds, and a risk threshold that a large cross-border payment exceeds.
DEMO_ACTION_TIMEOUT_SECONDS = 8
DEMO_RISK_THRESHOLD = 50


def demo_defaults() -> dict[str, Any]:
    return {
        "payment": {
            "default_gateway": "mock",
            "action_timeout_seconds": DEMO_ACTION_TIMEOUT_SECONDS,
            "risk_threshold": DEMO_RISK_THRESHOLD,
            # The mock ledger lives in this process only, so a per-process secret is enough.
            "mock": {"enabled": True, "webhook_secret": secrets.token_hex(16)},
        }
    }


@dataclass(frozen=True)
class Outcome:
    flow: str
    expected: str
    actual: str
    payment_id: str | None
    ok: bool


class DemoError(Exception):
    """A step of a flow answered something other than what the flow needs to go on."""


def _summary(payment: dict[str, Any]) -> str:
    text = payment["status"]
    if payment.get("failure"):
        text += f" ({payment['failure']['code']})"
    if payment["status"] in ("paid", "partially_refunded", "refunded"):
        text += f" captured {payment['captured_amount']}"
    if payment["status"] in ("partially_refunded", "refunded"):
        text += f" refunded {payment['refunded_amount']}"
    return text


Flow = tuple[str, str, Callable[[], Awaitable[dict[str, Any]]]]


class Demo:
    def __init__(
        self,
        http: httpx.AsyncClient,
        api_key: str,
        mock: MockGateway,
        *,
        webhook_url: str,
        providers: FakeProviders | None = None,
    ) -> None:
        self._http = http
        self._api_key = api_key
        self._mock = mock
        self._webhook_url = webhook_url
        self._providers = providers or FakeProviders()
        self._run = uuid.uuid4().hex[:8]  # fresh orders and idempotency keys on every run

    def _headers(self, key: str | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self._api_key}"}
        if key:
            headers["Idempotency-Key"] = f"demo-{self._run}-{key}"
        return headers

    async def _post(self, path: str, key: str, body: dict[str, Any], ok: tuple[int, ...]) -> dict[str, Any]:
        response = await self._http.post(path, json=body, headers=self._headers(key))
        if response.status_code not in ok:
            raise DemoError(f"POST {path} answered {response.status_code}: {response.text[:200]}")
        return response.json()

    async def _create(
        self, flow: str, amount: str, token: str, card: dict[str, str] | None = None, **extra: Any
    ) -> dict[str, Any]:
        return await self._create_with(
            flow, amount, {"type": "card", "token": token, **(card or {})}, **extra
        )

    async def _create_with(
        self, flow: str, amount: str, method: dict[str, str], *, currency: str = "USD", **extra: Any
    ) -> dict[str, Any]:
        body = {
            "order_id": f"demo-{self._run}-{flow}",
            "currency": currency,
            "amount": amount,
            "payment_method": method,
            "description": f"durapay demo: {flow}",
            **extra,
        }
        return await self._post("/v1/payments", flow, body, (200, 201, 202, 402))

    async def _create_wallet(
        self, flow: str, amount: str, wallet: str, wallet_flow: str, **extra: Any
    ) -> dict[str, Any]:
        method = {"type": "wallet", "wallet": wallet, "flow": wallet_flow}
        payment = await self._create_with(flow, amount, method, currency="CNY", gateway=wallet, **extra)
        if payment["status"] != "authorizing" or not payment.get("next_action"):
            raise DemoError(f"expected a payment waiting for the customer, got {_summary(payment)}")
        return payment

    async def _notify(self, gateway: str, delivery: tuple[dict[str, str], bytes], ok: int) -> None:
        """Deliver a provider's signed notification to our webhook receiver, as the provider does."""
        headers, body = delivery
        response = await self._http.post(f"{self._webhook_url}/{gateway}", content=body, headers=headers)
        if response.status_code != ok:
            raise DemoError(
                f"the {gateway} notification was answered {response.status_code}: {response.text[:200]}"
            )

    async def _wait(
        self, payment_id: str, done: Callable[[dict[str, Any]], bool], timeout: float
    ) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            response = await self._http.get(f"/v1/payments/{payment_id}", headers=self._headers())
            response.raise_for_status()
            payment = response.json()
            if done(payment) or loop.time() > deadline:
                return payment
            await asyncio.sleep(0.2)

    # -- the flows: each returns the payment as it ended -------------------------------------

    async def instant_success(self) -> dict[str, Any]:
        return await self._create("instant", "49.99", "tok_visa")

    async def decline(self) -> dict[str, Any]:
        return await self._create("decline", "12.00", "tok_chargeDeclined")

    async def fraud_block(self) -> dict[str, Any]:
        # A large amount from a card whose country differs from the customer's IP country.
        return await self._create(
            "fraud", "2500.00", "tok_visa", card={"country": "US"}, metadata={"ip_country": "NG"}
        )

    async def three_ds_completed(self) -> dict[str, Any]:
        payment = await self._create(
            "3ds", "120.00", "tok_threeDSecure2Required", return_url="https://shop.example/return"
        )
        if payment["status"] != "authorizing" or not payment.get("next_action"):
            raise DemoError(f"expected a 3-D Secure challenge, got {_summary(payment)}")
        # The customer is back from the challenge page: the merchant tells us, the workflow asks
        # the gateway what really happened.
        payment = await self._post(
            f"/v1/payments/{payment['id']}/actions/complete",
            "3ds-complete",
            {"data": {"three_ds_result": "authenticated"}},
            (200, 202),
        )
        return await self._wait(payment["id"], lambda p: p["status"] != "authorizing", 30)

    async def three_ds_timeout(self) -> dict[str, Any]:
        payment = await self._create("3ds-timeout", "75.00", "tok_threeDSecure2Required")
        if payment["status"] != "authorizing":
            raise DemoError(f"expected a 3-D Secure challenge, got {_summary(payment)}")
        # Nobody completes it: the workflow gives up after payment.action_timeout_seconds.
        return await self._wait(
            payment["id"], lambda p: p["status"] != "authorizing", DEMO_ACTION_TIMEOUT_SECONDS + 30
        )

    async def manual_partial_capture(self) -> dict[str, Any]:
        payment = await self._create("capture", "100.00", "tok_visa", capture_method="manual")
        if payment["status"] != "authorized":
            raise DemoError(f"expected an authorization, got {_summary(payment)}")
        return await self._post(
            f"/v1/payments/{payment['id']}/capture", "capture-60", {"amount": "60.00"}, (200,)
        )

    async def partial_refunds(self) -> dict[str, Any]:
        payment = await self._create("refunds", "80.00", "tok_visa")
        if payment["status"] != "paid":
            raise DemoError(f"expected a paid payment, got {_summary(payment)}")
        for amount in ("30.00", "20.00"):
            await self._post(
                f"/v1/payments/{payment['id']}/refunds", f"refund-{amount}", {"amount": amount}, (201, 202)
            )
        return await self._wait(payment["id"], lambda p: p["refunded_amount"] == "50.00", 30)

    async def webhook_completion(self) -> dict[str, Any]:
        payment = await self._create("webhook", "33.00", "tok_async_webhook")
        if payment["status"] != "authorizing":
            raise DemoError(f"expected a payment waiting on the provider, got {_summary(payment)}")
        # The provider settles it later and tells us with a signed webhook.
        event = self._mock.settle(payment["id"])
        response = await self._mock.send_webhook(event, url=f"{self._webhook_url}/mock")
        if response.status_code != 200:
            raise DemoError(f"the webhook was answered {response.status_code}: {response.text[:200]}")
        return await self._wait(payment["id"], lambda p: p["status"] != "authorizing", 30)

    # -- the fake providers' flows ------------------------------------------------------------------

    async def stripe_card(self) -> dict[str, Any]:
        return await self._create("stripe-card", "25.00", "pm_card_visa", gateway=STRIPE)

    async def stripe_three_ds(self) -> dict[str, Any]:
        payment = await self._create(
            "stripe-3ds",
            "140.00",
            "pm_card_threeDSecure2Required",
            gateway=STRIPE,
            return_url="https://shop.example/return",
        )
        action = payment.get("next_action") or {}
        if payment["status"] != "authorizing" or action.get("type") != "redirect_to_url":
            raise DemoError(f"expected a 3-D Secure redirect, got {_summary(payment)}")
        # The customer's browser passes the challenge on Stripe's page, which sends it back to the shop
        # (not followed: the shop is not running here) with the intent's outcome in the query.
        challenge = await self._http.get(action["url"])
        if challenge.status_code != 302:
            raise DemoError(f"the 3-D Secure page answered {challenge.status_code}: {challenge.text[:200]}")
        back = httpx.URL(challenge.headers["location"]).params
        payment = await self._post(
            f"/v1/payments/{payment['id']}/actions/complete",
            "stripe-3ds-complete",
            {"data": {"payment_intent": back["payment_intent"], "redirect_status": back["redirect_status"]}},
            (200, 202),
        )
        return await self._wait(payment["id"], lambda p: p["status"] != "authorizing", 30)

    async def wechat_native(self) -> dict[str, Any]:
        fake = self._providers.wechat_pay
        assert fake is not None  # flows() lists this flow only with the fake running
        payment = await self._create_wallet("wechat-native", "88.88", WECHAT_PAY, "native")
        # The customer scans the QR code and pays; WeChat Pay tells us with a signed, encrypted notification.
        fake.pay(payment["id"])
        await self._notify(WECHAT_PAY, fake.payment_notification(payment["id"]), 204)
        return await self._wait(payment["id"], lambda p: p["status"] != "authorizing", 30)

    async def alipay_page(self) -> dict[str, Any]:
        fake = self._providers.alipay
        assert fake is not None  # flows() lists this flow only with the fake running
        payment = await self._create_wallet(
            "alipay-page", "66.60", ALIPAY, "page", return_url="https://shop.example/back"
        )
        # The customer's browser opens AliPay's cashier (which creates the trade) and pays; AliPay
        # tells us with a signed notification.
        status = await fake.open(payment["next_action"]["url"])
        if status != 200:
            raise DemoError(f"AliPay's cashier answered {status}")
        fake.pay(payment["id"])
        await self._notify(ALIPAY, fake.trade_notification(payment["id"]), 200)
        return await self._wait(payment["id"], lambda p: p["status"] != "authorizing", 30)

    def flows(self) -> list[Flow]:
        """(flow, expected summary, run): the mock's flows, then those of every fake provider running."""
        flows: list[Flow] = [
            ("instant success", "paid captured 49.99", self.instant_success),
            ("decline", "failed (card_declined)", self.decline),
            ("fraud block", "failed (blocked_by_fraud_check)", self.fraud_block),
            ("3-D Secure completed", "paid captured 120.00", self.three_ds_completed),
            ("3-D Secure timeout", "cancelled (action_timeout)", self.three_ds_timeout),
            ("manual partial capture", "paid captured 60.00", self.manual_partial_capture),
            ("partial refunds", "partially_refunded captured 80.00 refunded 50.00", self.partial_refunds),
            ("webhook completion", "paid captured 33.00", self.webhook_completion),
        ]
        if self._providers.stripe is not None:
            flows += [
                ("Stripe card success", "paid captured 25.00", self.stripe_card),
                ("Stripe 3-D Secure completed", "paid captured 140.00", self.stripe_three_ds),
            ]
        if self._providers.wechat_pay is not None:
            flows.append(("WeChat Pay Native QR + notification", "paid captured 88.88", self.wechat_native))
        if self._providers.alipay is not None:
            flows.append(("AliPay page + notification", "paid captured 66.60", self.alipay_page))
        return flows


async def run_demo(
    base_url: str, api_key: str, mock: MockGateway, providers: FakeProviders | None = None
) -> list[Outcome]:
    """Run every flow concurrently (the 3-D Secure timeout sets the pace) and check each; with
    `providers`, the flows of the fakes running too."""
    async with httpx.AsyncClient(base_url=base_url, timeout=60.0) as http:
        demo = Demo(http, api_key, mock, webhook_url=f"{base_url}/webhooks", providers=providers)

        async def one(flow: str, expected: str, run: Callable[[], Awaitable[dict[str, Any]]]) -> Outcome:
            try:
                payment = await run()
            except Exception as exc:  # one flow going wrong is an outcome to report, not a crash
                return Outcome(flow, expected, f"error: {type(exc).__name__}: {exc}", None, False)
            actual = _summary(payment)
            return Outcome(flow, expected, actual, payment["id"], actual == expected)

        return list(await asyncio.gather(*(one(*flow) for flow in demo.flows())))


def format_table(outcomes: list[Outcome], workflow_url: Callable[[str], str]) -> str:
    rows = [("", "flow", "outcome", "expected (when different)", "Temporal UI")]
    for outcome in outcomes:
        link = workflow_url(f"payment-{outcome.payment_id}") if outcome.payment_id else "-"
        rows.append(
            (
                "ok" if outcome.ok else "FAIL",
                outcome.flow,
                outcome.actual,
                "" if outcome.ok else outcome.expected,
                link,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    passed = sum(outcome.ok for outcome in outcomes)
    lines.append(f"{passed}/{len(outcomes)} flows as expected")
    return "\n".join(lines)
