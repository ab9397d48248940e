"""The conformance suite's control surface over one gateway and its fake provider.

Each gateway folder has a `testkit.py` exporting `Kit` (a `GatewayKit`), named by its descriptor's
`testkit`. The suite (tests/activities/gateways/test_conformance.py) drives the gateway through the
`Gateway` interface and uses the kit only for what a customer or the provider would do: pay the QR
code, pass the 3-D Secure page, send a notification, lose an answer on the wire, and - to prove
"never charges twice" - read what the provider's ledger really holds. The suite never trusts the
adapter's own result for money that moved.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal
from unittest import mock

from pydantic import BaseModel

from activities.gateways.base import Gateway
from workflows.domain import PaymentMethod
from workflows.gateway_io import GatewayResult
from workflows.money import Amount

# success: approved; decline: refused by the provider; action: the customer must act (3DS, QR, redirect).
MethodKind = Literal["success", "decline", "action"]
# The money-moving calls whose answer a kit can lose on the wire.
LostAnswer = Literal["authorize", "refund"]
# A notification as the provider posts it: (headers, raw body).
Delivery = tuple[dict[str, str], bytes]
GatewayFactory = Callable[[Any], Gateway]  # settings model -> gateway


@dataclass(frozen=True)
class Ledger:
    """What the fake provider holds for one of our payments, read the way the provider reads its
    wire (its own amount rules), expressed as our Amounts."""

    holds: list[Amount]  # authorized, neither captured nor released
    charges: list[Amount]  # money taken from the customer, one entry per charge
    refunds: list[Amount]  # money given back, one entry per refund


@dataclass(frozen=True)
class KitTraits:
    """What the fake and its provider offer the suite (the gateway's own capabilities are in its
    `GatewayProfile`)."""

    currency: str  # the currency of the suite's ordinary payments
    # One currency per ISO 4217 exponent the provider takes (0, 2, 3 decimals); absent: not taken.
    currencies: Mapping[int, str]
    # How long a signed notification stays valid; None: the provider signs no time, so a re-sent
    # notification verifies forever and only the workflow's de-duplication (on the event id) stops it.
    webhook_window_seconds: int | None
    # Whether the provider can find a payment by our reference alone (no provider id). PayPal
    # cannot (no search of orders by custom_id / invoice_id): its lost create answer is recovered
    # by the retried create under the same PayPal-Request-Id, which the suite still checks.
    finds_by_reference: bool = True
    # The money's proof never comes through the gateway (a bank transfer: an operator or an imported
    # statement confirms it to the workflow, by a validated update). The suite then proves that the
    # gateway can never report money by itself, instead of the checks of money it reports.
    confirmed_out_of_band: bool = False


class GatewayKit(ABC):
    """Starts the fake provider and a gateway pointed at it (`async with Kit() as kit`).
    `build` replaces the gateway's factory: the suite's own tests run broken gateways this way."""

    id: str
    traits: KitTraits

    def __init__(self, build: GatewayFactory | None = None) -> None:
        self._build = build
        self._gateway: Gateway | None = None

    @property
    def gateway(self) -> Gateway:
        if self._gateway is None:
            raise RuntimeError("the kit is not started: use `async with`")
        return self._gateway

    async def __aenter__(self) -> GatewayKit:
        from activities.gateways.plugins import PLUGINS  # the descriptors name this module lazily

        plugin = PLUGINS[self.id]
        settings = plugin.settings_model().model_validate(await self._start())
        self._gateway = self._build(settings) if self._build else self.build_gateway(settings)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._gateway is not None:
            await self._gateway.aclose()
        await self._stop()

    def build_gateway(self, settings: BaseModel) -> Gateway:
        from activities.gateways.plugins import PLUGINS

        return PLUGINS[self.id].build(settings)

    @contextmanager
    def later(self, seconds: float) -> Iterator[None]:
        """The gateway's wall clock `seconds` ahead (for replays past a notification window)."""
        now = time.time()
        with mock.patch("time.time", lambda: now + seconds):
            yield

    # -- the fake --------------------------------------------------------------------------------

    @abstractmethod
    async def _start(self) -> Mapping[str, Any]:
        """Start the fake; return the gateway's settings section pointing at it."""

    async def _stop(self) -> None:  # noqa: B027 (optional: an in-process provider has nothing to stop)
        """Stop the fake."""

    # -- the customer's side ---------------------------------------------------------------------

    @abstractmethod
    def method(self, kind: MethodKind) -> PaymentMethod | None:
        """A payment method that behaves as `kind`; None when the provider has no such method
        (a wallet has no card to decline; Braintree's 3-D Secure happens before the payment)."""

    def unauthenticated_method(self) -> PaymentMethod | None:
        """Where the customer authenticates before the payment reaches us (client-side 3-D Secure,
        so `method("action")` is None): a method whose authentication failed. None elsewhere."""
        return None

    @abstractmethod
    async def complete_action(self, payment_id: str, result: GatewayResult) -> dict[str, str]:
        """Do what the customer does with `result.next_action` (pay the QR, pass 3-D Secure); return
        what their return to the shop carries, for the lookup that follows. Raises ValueError when
        the provider would not let them (the order was closed)."""

    # -- the provider's side ---------------------------------------------------------------------

    @abstractmethod
    def ledger(self, payment_id: str) -> Ledger:
        """What the provider really holds for the payment."""

    @abstractmethod
    def lose_next_answer(self, operation: LostAnswer) -> PaymentMethod:
        """Arm the fault "the provider did it, the answer never arrived" for the next `operation`;
        return the payment method the payment must be made with."""

    @abstractmethod
    def webhook(self, payment_id: str, *, timestamp: int | None = None) -> Delivery:
        """The provider's signed "payment succeeded" notification for a paid payment, signed at
        `timestamp` (default now; ignored when the provider signs no time)."""

    @abstractmethod
    def tamper(self, delivery: Delivery) -> Delivery:
        """The same delivery with its content changed after signing, as an attacker would."""
