"""The demo: one payment per flow, pushed through the real HTTP API, checked against the outcome
each flow must have, printed as a table with links to the payments' workflows in the Temporal UI.

It runs against a live worker + API with the mock gateway enabled (`durapay dev`, `durapay demo`,
tests). The webhook flow settles the payment at the mock "provider", which lives in the worker's
process: so the demo runs in that process too, and takes the mock gateway object. Given the fake
providers (workers/fake_providers/local.py), it adds the flows of every gateway whose fake is running.
The flows live with their gateways (`activities/gateways/<id>/demo.py`); this module runs them.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from activities.gateways.demo_flow import DemoError, DemoFlow, Payment, summary
from activities.gateways.mock import GATEWAY_ID as MOCK
from activities.gateways.mock.adapter import MockGateway
from activities.gateways.plugins import PLUGINS
from workers.demo_review import FLOWS as REVIEW_FLOWS
from workers.demo_review import review_defaults
from workers.fake_providers.local import FakeProviders
from workflows.client import workflow_id

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
        },
        **review_defaults(),
    }


@dataclass(frozen=True)
class Outcome:
    flow: str
    expected: str
    actual: str
    payment_id: str | None
    ok: bool


class Demo:
    """The steps the gateways' flows take (activities.gateways.demo_flow.DemoSteps), on our HTTP API."""

    def __init__(self, http: httpx.AsyncClient, api_key: str, *, webhook_url: str) -> None:
        self._http = http
        self._api_key = api_key
        self._webhook_url = webhook_url
        self._run = uuid.uuid4().hex[:8]  # fresh orders and idempotency keys on every run

    @property
    def http(self) -> httpx.AsyncClient:
        return self._http

    @property
    def action_timeout_seconds(self) -> int:
        return DEMO_ACTION_TIMEOUT_SECONDS

    def webhook_url(self, gateway: str) -> str:
        return f"{self._webhook_url}/{gateway}"

    def _headers(self, key: str | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self._api_key}"}
        if key:
            headers["Idempotency-Key"] = f"demo-{self._run}-{key}"
        return headers

    async def post(self, path: str, key: str, body: dict[str, Any], ok: tuple[int, ...]) -> Payment:
        response = await self._http.post(path, json=body, headers=self._headers(key))
        if response.status_code not in ok:
            raise DemoError(f"POST {path} answered {response.status_code}: {response.text[:200]}")
        return response.json()

    async def create(
        self, flow: str, amount: str, method: dict[str, str], *, currency: str = "USD", **extra: Any
    ) -> Payment:
        body = {
            "order_id": f"demo-{self._run}-{flow}",
            "currency": currency,
            "amount": amount,
            "payment_method": method,
            "description": f"durapay demo: {flow}",
            **extra,
        }
        return await self.post("/v1/payments", flow, body, (200, 201, 202, 402))

    async def create_waiting(
        self, flow: str, amount: str, method: dict[str, str], *, currency: str = "USD", **extra: Any
    ) -> Payment:
        payment = await self.create(flow, amount, method, currency=currency, **extra)
        if payment["status"] != "authorizing" or not payment.get("next_action"):
            raise DemoError(f"expected a payment waiting for the customer, got {summary(payment)}")
        return payment

    async def notify(self, gateway: str, delivery: tuple[dict[str, str], bytes], ok: int) -> None:
        headers, body = delivery
        response = await self._http.post(self.webhook_url(gateway), content=body, headers=headers)
        if response.status_code != ok:
            raise DemoError(
                f"the {gateway} notification was answered {response.status_code}: {response.text[:200]}"
            )

    async def wait(self, payment_id: str, done: Callable[[Payment], bool], timeout: float) -> Payment:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            response = await self._http.get(f"/v1/payments/{payment_id}", headers=self._headers())
            response.raise_for_status()
            payment = response.json()
            if done(payment) or loop.time() > deadline:
                return payment
            await asyncio.sleep(0.2)

    async def settled(self, payment_id: str, timeout: float = 30) -> Payment:
        return await self.wait(payment_id, lambda p: p["status"] != "authorizing", timeout)


def demo_flows(mock: MockGateway, providers: FakeProviders | None) -> list[tuple[DemoFlow, Any]]:
    """(flow, the provider it runs against): the mock's flows, then those of every gateway whose
    fake is running, in PLUGINS order."""
    targets: dict[str, Any] = {MOCK: mock, **(providers.running if providers else {})}
    return [
        (flow, targets[plugin.id])
        for plugin in PLUGINS.values()
        if plugin.id in targets
        for flow in plugin.load_demo_flows()
    ] + [(flow, mock) for flow in REVIEW_FLOWS]


async def run_demo(
    base_url: str, api_key: str, mock: MockGateway, providers: FakeProviders | None = None
) -> list[Outcome]:
    """Run every flow concurrently (the 3-D Secure timeout sets the pace) and check each; with
    `providers`, the flows of the fakes running too."""
    async with httpx.AsyncClient(base_url=base_url, timeout=60.0) as http:
        demo = Demo(http, api_key, webhook_url=f"{base_url}/webhooks")

        async def one(flow: DemoFlow, provider: Any) -> Outcome:
            try:
                payment = await flow.run(demo, provider)
            except Exception as exc:  # one flow going wrong is an outcome to report, not a crash
                return Outcome(flow.name, flow.expected, f"error: {type(exc).__name__}: {exc}", None, False)
            actual = summary(payment)
            return Outcome(flow.name, flow.expected, actual, payment["id"], actual == flow.expected)

        return list(await asyncio.gather(*(one(*flow) for flow in demo_flows(mock, providers))))


def format_table(outcomes: list[Outcome], workflow_url: Callable[[str], str]) -> str:
    rows = [("", "flow", "outcome", "expected (when different)", "Temporal UI")]
    for outcome in outcomes:
        link = workflow_url(workflow_id(outcome.payment_id)) if outcome.payment_id else "-"
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
