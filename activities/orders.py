"""The order ledger: at most one payment per order at a time, and never a second one once paid.

`OrderService` is the port the workflow's order steps go through; `SqlOrderLedger` is the built-in
implementation on durapay's own database. A merchant with an order system of its own can wire in
another `OrderService` without touching the workflow.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from sqlalchemy import RowMapping, and_, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from activities.store.db import write_transaction
from activities.store.repository import dialect_insert
from activities.store.tables import OrderStatus, orders
from workflows import activity_names
from workflows.ledger_io import OrderRefusal, OrderRelease, OrderReservation, ReservationResult
from workflows.money import Amount

log = logging.getLogger(__name__)


@runtime_checkable
class OrderService(Protocol):
    async def reserve(self, reservation: OrderReservation) -> ReservationResult:
        """Let `reservation.payment_id` pay the order, or say why not. Repeating it is harmless."""
        ...

    async def release(self, release: OrderRelease) -> None:
        """The payment failed or was cancelled: the order may be paid by another payment."""
        ...

    async def confirm(self, release: OrderRelease) -> None:
        """The payment's money moved: the order is paid."""
        ...


class SqlOrderLedger:
    """`OrderService` on the `orders` table. The first payment registers the order (its amount and
    currency); every later payment must match them."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def reserve(self, reservation: OrderReservation) -> ReservationResult:
        amount = reservation.amount
        async with write_transaction(self._engine) as conn:
            # Register the order held by this payment if it is new. Under a concurrent reserve of
            # the same new order PostgreSQL makes this insert wait for the other transaction, and
            # the row lock below serializes everything after it: exactly one payment wins.
            registered = await conn.execute(
                _register(conn.dialect.name),
                {
                    "merchant_id": reservation.merchant_id,
                    "order_id": reservation.order_id,
                    "amount_minor": amount.minor,
                    "currency": amount.currency,
                    "status": OrderStatus.RESERVED.value,
                    "payment_id": reservation.payment_id,
                    "updated_at": datetime.now(UTC),
                },
            )
            if registered.first() is not None:
                # Registered just now, held by this payment: what `_decide` says of such a row.
                return ReservationResult(accepted=True)
            order = (await conn.execute(_LOCK, _keys(reservation))).mappings().one()
            result = _decide(order, reservation)
            if result.accepted and order["status"] == OrderStatus.OPEN:
                await conn.execute(_HOLD, _hold(reservation, OrderStatus.RESERVED))
        return result

    async def release(self, release: OrderRelease) -> None:
        """Free the order if this payment holds it in flight. A paid order stays paid: money
        moved, and only a new order may be paid again (refunds do not reopen it)."""
        async with write_transaction(self._engine) as conn:
            await conn.execute(_RELEASE, _hold(release, OrderStatus.OPEN))

    async def confirm(self, release: OrderRelease) -> None:
        """Mark the order paid by this payment. The money moved, so the ledger follows it even
        onto an order no payment holds; an order another payment holds or paid is left alone and
        the conflict logged (the payment's own record still shows the money, for reconciliation)."""
        async with write_transaction(self._engine) as conn:
            order = (await conn.execute(_LOCK, _keys(release))).mappings().one_or_none()
            holder = None if order is None else order["payment_id"]
            if order is None or (holder is not None and holder != release.payment_id):
                log.warning(
                    "order %s not confirmed for payment %s: %s",
                    release.order_id,
                    release.payment_id,
                    "unknown order" if order is None else f"held by payment {holder} ({order['status']})",
                )
                return
            await conn.execute(_HOLD, _hold(release, OrderStatus.PAID))


# The ledger's statements, built once (building them per call cost about a third of each step's
# CPU) and executed with each step's values. Bind names differ from the column names: those are
# reserved for the SET clause of an UPDATE.
_THE_ORDER = and_(
    orders.c.merchant_id == bindparam("at_merchant"), orders.c.order_id == bindparam("at_order")
)
_LOCK = select(orders).where(_THE_ORDER).with_for_update()
# The order held (reserved) or paid by a payment.
_HOLD = (
    update(orders)
    .where(_THE_ORDER)
    .values(status=bindparam("new_status"), payment_id=bindparam("by_payment"), updated_at=bindparam("at"))
)
# Freed, if this payment holds it in flight.
_RELEASE = (
    update(orders)
    .where(
        _THE_ORDER,
        orders.c.payment_id == bindparam("by_payment"),
        orders.c.status == OrderStatus.RESERVED.value,
    )
    .values(status=bindparam("new_status"), payment_id=None, updated_at=bindparam("at"))
)


@functools.cache
def _register(dialect: str) -> Any:
    """Insert a new order; RETURNING says whether this call inserted it."""
    return (
        dialect_insert(dialect, orders)
        .on_conflict_do_nothing(index_elements=["merchant_id", "order_id"])
        .returning(orders.c.order_id)
    )


def _keys(step: OrderReservation | OrderRelease) -> dict[str, str]:
    return {"at_merchant": step.merchant_id, "at_order": step.order_id}


def _hold(step: OrderReservation | OrderRelease, status: OrderStatus) -> dict[str, Any]:
    return {
        **_keys(step),
        "new_status": status.value,
        "by_payment": step.payment_id,
        "at": datetime.now(UTC),
    }


def _decide(order: RowMapping, reservation: OrderReservation) -> ReservationResult:
    status = OrderStatus(order["status"])
    if order["payment_id"] == reservation.payment_id:
        # The same payment asking again (a retried step): it already holds the order.
        return ReservationResult(accepted=True)
    if status is OrderStatus.PAID:
        return ReservationResult(
            accepted=False, refusal=OrderRefusal.ALREADY_PAID, message="the order is already paid"
        )
    registered = Amount(minor=order["amount_minor"], currency=order["currency"])
    if registered != reservation.amount:
        return ReservationResult(
            accepted=False,
            refusal=OrderRefusal.AMOUNT_MISMATCH,
            message=f"the order is for {registered}, not {reservation.amount}",
        )
    if status is OrderStatus.RESERVED:
        return ReservationResult(
            accepted=False,
            refusal=OrderRefusal.PAYMENT_IN_FLIGHT,
            message="another payment for the order is in progress",
        )
    return ReservationResult(accepted=True)


class OrderActivities:
    """The order steps as Temporal (local) activities, over any `OrderService`."""

    def __init__(self, service: OrderService) -> None:
        self._service = service

    @activity.defn(name=activity_names.RESERVE_ORDER)
    async def reserve(self, reservation: OrderReservation) -> ReservationResult:
        return await self._service.reserve(reservation)

    @activity.defn(name=activity_names.RELEASE_ORDER)
    async def release(self, release: OrderRelease) -> None:
        await self._service.release(release)

    @activity.defn(name=activity_names.CONFIRM_ORDER)
    async def confirm(self, release: OrderRelease) -> None:
        await self._service.confirm(release)

    def definitions(self) -> list[Callable[..., Any]]:
        return [self.reserve, self.release, self.confirm]
