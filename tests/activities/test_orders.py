import asyncio
import logging

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import ActivityEnvironment

from activities.orders import OrderActivities, OrderService, SqlOrderLedger
from activities.store.tables import orders
from tests.activities.store.helpers import engine
from workflows import activity_names
from workflows.ledger_io import OrderRefusal, OrderRelease, OrderReservation, ReservationResult
from workflows.money import Amount

USD_10 = Amount(minor=1000, currency="USD")


@pytest.fixture
def ledger(engine: AsyncEngine) -> SqlOrderLedger:
    return SqlOrderLedger(engine)


def reserve(order: str, payment: str, amount: Amount = USD_10) -> OrderReservation:
    return OrderReservation(order_id=order, payment_id=payment, amount=amount)


def held(order: str, payment: str) -> OrderRelease:
    return OrderRelease(order_id=order, payment_id=payment)


ACCEPTED = ReservationResult(accepted=True)


async def order_row(engine: AsyncEngine, order: str) -> dict:
    async with engine.connect() as conn:
        found = (await conn.execute(select(orders).where(orders.c.order_id == order))).mappings().one()
    return dict(found)


def refusal(result: ReservationResult) -> OrderRefusal | None:
    assert result.accepted is (result.refusal is None)
    return result.refusal


def test_the_sql_ledger_is_an_order_service(ledger: SqlOrderLedger) -> None:
    assert isinstance(ledger, OrderService)
    assert not isinstance(object(), OrderService)


async def test_the_first_payment_registers_and_holds_the_order(
    ledger: SqlOrderLedger, engine: AsyncEngine, unique: str
) -> None:
    order = f"ord_{unique}"
    assert await ledger.reserve(reserve(order, "pay_a")) == ACCEPTED
    assert await ledger.reserve(reserve(order, "pay_a")) == ACCEPTED  # a retried step
    stored = await order_row(engine, order)
    assert (stored["amount_minor"], stored["currency"], stored["status"], stored["payment_id"]) == (
        1000,
        "USD",
        "reserved",
        "pay_a",
    )

    in_flight = await ledger.reserve(reserve(order, "pay_b"))
    assert refusal(in_flight) is OrderRefusal.PAYMENT_IN_FLIGHT
    assert (
        refusal(await ledger.reserve(reserve(order, "pay_b", Amount(minor=999, currency="USD"))))
        is OrderRefusal.AMOUNT_MISMATCH
    )
    mismatch = await ledger.reserve(reserve(order, "pay_b", Amount(minor=1000, currency="EUR")))
    assert refusal(mismatch) is OrderRefusal.AMOUNT_MISMATCH
    assert mismatch.message == "the order is for 10.00 USD, not 10.00 EUR"


async def test_release_frees_the_order_for_the_next_payment(
    ledger: SqlOrderLedger, engine: AsyncEngine, unique: str
) -> None:
    order = f"ord_{unique}"
    await ledger.reserve(reserve(order, "pay_a"))
    await ledger.release(held(order, "pay_b"))  # not the holder: changes nothing
    assert refusal(await ledger.reserve(reserve(order, "pay_b"))) is OrderRefusal.PAYMENT_IN_FLIGHT

    await ledger.release(held(order, "pay_a"))
    await ledger.release(held(order, "pay_a"))  # repeated: still harmless
    assert (await order_row(engine, order))["status"] == "open"
    # The registered amount stays: a free order still only takes its own amount.
    assert (
        refusal(await ledger.reserve(reserve(order, "pay_b", Amount(minor=1, currency="USD"))))
        is OrderRefusal.AMOUNT_MISMATCH
    )
    assert await ledger.reserve(reserve(order, "pay_b")) == ACCEPTED
    assert (await order_row(engine, order))["payment_id"] == "pay_b"


async def test_a_paid_order_refuses_every_other_payment_and_stays_paid(
    ledger: SqlOrderLedger, engine: AsyncEngine, unique: str
) -> None:
    order = f"ord_{unique}"
    await ledger.reserve(reserve(order, "pay_a"))
    await ledger.confirm(held(order, "pay_a"))
    await ledger.confirm(held(order, "pay_a"))  # a retried step

    paid = await ledger.reserve(reserve(order, "pay_b"))
    assert refusal(paid) is OrderRefusal.ALREADY_PAID
    # Already paid wins over an amount mismatch: it is the reason that matters to the caller.
    assert (
        refusal(await ledger.reserve(reserve(order, "pay_c", Amount(minor=5, currency="USD"))))
        is OrderRefusal.ALREADY_PAID
    )
    assert await ledger.reserve(reserve(order, "pay_a")) == ACCEPTED  # its own payment, repeating itself

    await ledger.release(held(order, "pay_a"))  # money moved: a release does not reopen the order
    stored = await order_row(engine, order)
    assert (stored["status"], stored["payment_id"]) == ("paid", "pay_a")


async def test_confirm_follows_the_money_but_never_takes_another_payments_order(
    ledger: SqlOrderLedger, engine: AsyncEngine, unique: str, caplog: pytest.LogCaptureFixture
) -> None:
    order = f"ord_{unique}"
    await ledger.reserve(reserve(order, "pay_a"))
    await ledger.release(held(order, "pay_a"))
    await ledger.confirm(held(order, "pay_a"))  # an order nobody holds: the money decides
    assert (await order_row(engine, order))["status"] == "paid"

    other = f"ord2_{unique}"
    await ledger.reserve(reserve(other, "pay_x"))
    with caplog.at_level(logging.WARNING, logger="activities.orders"):
        await ledger.confirm(held(other, "pay_y"))
        await ledger.confirm(held(f"never_{unique}", "pay_y"))
    stored = await order_row(engine, other)
    assert (stored["status"], stored["payment_id"]) == ("reserved", "pay_x")
    assert [r.getMessage() for r in caplog.records] == [
        f"order {other} not confirmed for payment pay_y: held by payment pay_x (reserved)",
        f"order never_{unique} not confirmed for payment pay_y: unknown order",
    ]


@pytest.mark.parametrize("registered", [False, True], ids=["new-order", "open-order"])
async def test_concurrent_payments_for_one_order_exactly_one_wins(
    ledger: SqlOrderLedger, engine: AsyncEngine, unique: str, registered: bool
) -> None:
    order = f"ord_{unique}"
    if registered:
        await ledger.reserve(reserve(order, "pay_first"))
        await ledger.release(held(order, "pay_first"))

    # Separate ledgers (as separate workers would have), all at once.
    contenders = [f"pay_{i}" for i in range(8)]
    results = await asyncio.gather(*(SqlOrderLedger(engine).reserve(reserve(order, p)) for p in contenders))

    winners = [p for p, r in zip(contenders, results, strict=True) if r.accepted]
    assert len(winners) == 1
    assert {r.refusal for r in results if not r.accepted} == {OrderRefusal.PAYMENT_IN_FLIGHT}
    assert (await order_row(engine, order))["payment_id"] == winners[0]


async def test_order_activities_run_the_service_under_the_registered_names(
    ledger: SqlOrderLedger, engine: AsyncEngine, unique: str
) -> None:
    activities = OrderActivities(ledger)
    names = [fn.__temporal_activity_definition.name for fn in activities.definitions()]
    assert names == [activity_names.RESERVE_ORDER, activity_names.RELEASE_ORDER, activity_names.CONFIRM_ORDER]

    env = ActivityEnvironment()
    order = f"ord_{unique}"
    assert await env.run(activities.reserve, reserve(order, "pay_a")) == ACCEPTED
    await env.run(activities.release, held(order, "pay_a"))
    assert await env.run(activities.reserve, reserve(order, "pay_b")) == ACCEPTED
    await env.run(activities.confirm, held(order, "pay_b"))
    assert (await order_row(engine, order))["status"] == "paid"


async def test_the_same_order_id_at_two_merchants_is_two_orders(ledger: SqlOrderLedger, unique: str) -> None:
    order = f"ord_{unique}"
    ours = OrderReservation(order_id=order, payment_id="pay_a", amount=USD_10)
    theirs = OrderReservation(
        order_id=order, payment_id="pay_b", amount=Amount(minor=5, currency="EUR"), merchant_id=f"m-{unique}"
    )
    assert await ledger.reserve(ours) == ACCEPTED
    # Neither "in flight" nor "amount mismatch": the other merchant's order 'ord_...' is its own.
    assert await ledger.reserve(theirs) == ACCEPTED
    await ledger.confirm(OrderRelease(order_id=order, payment_id="pay_b", merchant_id=f"m-{unique}"))
    # Paying theirs left ours held by our payment, and releasing ours leaves theirs paid.
    await ledger.release(held(order, "pay_a"))
    assert await ledger.reserve(reserve(order, "pay_c")) == ACCEPTED
    again = theirs.model_copy(update={"payment_id": "pay_d"})
    assert refusal(await ledger.reserve(again)) is OrderRefusal.ALREADY_PAID
