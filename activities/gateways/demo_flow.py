"""One flow of the demo (`durapay dev`, `durapay demo`): a payment pushed through our HTTP API to
the outcome the flow must have. Each gateway lists its own flows (`activities/gateways/<id>/demo.py`,
named by its descriptor's `demo_flows`); the demo (workers/demo.py) runs them and gives them the
steps below, so a flow says what the customer and the provider do, never how to talk to our API.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import httpx

Payment = dict[str, Any]  # a payment as our API answers it


class DemoError(Exception):
    """A step of a flow answered something other than what the flow needs to go on."""


class DemoSteps(Protocol):
    """What the demo offers a flow: our API, the receiver, and the demo's timings."""

    @property
    def http(self) -> httpx.AsyncClient:
        """A client for URLs the customer's browser opens (provider pages)."""
        ...

    @property
    def action_timeout_seconds(self) -> int: ...

    def webhook_url(self, gateway: str) -> str:
        """Our receiver's URL for `gateway`'s notifications."""
        ...

    async def create(
        self, flow: str, amount: str, method: dict[str, str], *, currency: str = "USD", **extra: Any
    ) -> Payment:
        """`POST /v1/payments` for this flow (its own order id and idempotency key)."""
        ...

    async def create_waiting(
        self, flow: str, amount: str, method: dict[str, str], *, currency: str = "USD", **extra: Any
    ) -> Payment:
        """`create`, which must leave the payment waiting for the customer (a `next_action`)."""
        ...

    async def post(self, path: str, key: str, body: dict[str, Any], ok: tuple[int, ...]) -> Payment: ...

    async def notify(self, gateway: str, delivery: tuple[dict[str, str], bytes], ok: int) -> None:
        """Deliver a provider's signed notification (headers, body) to our receiver, as it does."""
        ...

    async def wait(self, payment_id: str, done: Callable[[Payment], bool], timeout: float) -> Payment: ...

    async def settled(self, payment_id: str, timeout: float = 30) -> Payment:
        """The payment once it is no longer `authorizing` (or as it is after `timeout`)."""
        ...


@dataclass(frozen=True)
class DemoFlow:
    """`run(steps, provider)` returns the payment as it ended; `provider` is the gateway's running
    fake (the mock's flows get the in-process mock gateway)."""

    name: str
    expected: str  # the `summary` the payment must end with
    run: Callable[[DemoSteps, Any], Awaitable[Payment]]


def card(token: str, **details: str) -> dict[str, str]:
    return {"type": "card", "token": token, **details}


def wallet(wallet_id: str, flow: str) -> dict[str, str]:
    return {"type": "wallet", "wallet": wallet_id, "flow": flow}


def summary(payment: Payment) -> str:
    """The payment's outcome in one line, as the demo's table shows it."""
    text = payment["status"]
    if payment.get("failure"):
        text += f" ({payment['failure']['code']})"
    if payment["status"] in ("paid", "partially_refunded", "refunded"):
        text += f" captured {payment['captured_amount']}"
    if payment["status"] in ("partially_refunded", "refunded"):
        text += f" refunded {payment['refunded_amount']}"
    return text
