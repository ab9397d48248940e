"""`PaymentStore.page` / `position`: a merchant's payments, filtered, newest first, paged by keyset,
on SQLite and PostgreSQL; and `CustomerStore`."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from activities.store.customers import CustomerStore
from activities.store.repository import PaymentStore
from tests.activities.store.helpers import T0, engine, make_view, store
from workflows.customer_io import CustomerRecord, SavedMethodRecord
from workflows.domain import PaymentStatus
from workflows.ledger_io import PaymentTransition


async def _record(store: PaymentStore, merchant: str, payment_id: str, **changes) -> None:
    view = make_view(payment_id, merchant_id=merchant, **changes)
    await store.record_transition(PaymentTransition(view=view, events=[]))


async def _walk(store: PaymentStore, merchant: str, limit: int, between_pages=None, **filters) -> list[str]:
    seen: list[str] = []
    after = None
    while True:
        views, has_more = await store.page(merchant, after=after, limit=limit, **filters)
        seen += [view.id for view in views]
        if not has_more:
            return seen
        after = await store.position(merchant, views[-1].id)
        assert after is not None
        if between_pages is not None:
            await between_pages()


async def test_filters_each_narrow_to_the_merchants_matching_payments(
    store: PaymentStore, unique: str
) -> None:
    m = f"m-{unique}"
    await _record(
        store, m, f"pay_{unique}_1", created_at=T0, status=PaymentStatus.PAID, provider_payment_id="pi_1"
    )
    await _record(store, m, f"pay_{unique}_2", created_at=T0 + timedelta(seconds=1), gateway="stripe")
    await _record(store, m, f"pay_{unique}_3", created_at=T0 + timedelta(seconds=2), order_id=f"o-{unique}")
    await _record(
        store, m, f"pay_{unique}_4", created_at=T0 + timedelta(seconds=3), customer_id=f"c-{unique}"
    )
    # Another merchant's payment matching every filter is never seen.
    await _record(
        store,
        f"other-{unique}",
        f"pay_{unique}_x",
        created_at=T0 + timedelta(seconds=2),
        status=PaymentStatus.PAID,
        gateway="stripe",
        order_id=f"o-{unique}",
        customer_id=f"c-{unique}",
        provider_payment_id="pi_1",
    )

    async def ids(**filters) -> list[str]:
        views, has_more = await store.page(m, **filters)
        assert not has_more
        return [view.id.removeprefix(f"pay_{unique}_") for view in views]

    assert await ids() == ["4", "3", "2", "1"]  # newest first
    assert await ids(status=PaymentStatus.PAID) == ["1"]
    assert await ids(gateway="stripe") == ["2"]
    assert await ids(order_id=f"o-{unique}") == ["3"]
    assert await ids(customer_id=f"c-{unique}") == ["4"]
    assert await ids(provider_payment_id="pi_1") == ["1"]
    assert await ids(created_gte=T0 + timedelta(seconds=1), created_lt=T0 + timedelta(seconds=3)) == [
        "3",
        "2",
    ]
    assert await ids(status=PaymentStatus.PENDING, created_gte=T0 + timedelta(seconds=2)) == ["4", "3"]
    assert await store.position(m, f"pay_{unique}_x") is None  # not this merchant's: no cursor


async def test_pages_have_no_duplicates_or_gaps_while_payments_arrive(
    store: PaymentStore, unique: str
) -> None:
    m = f"m-{unique}"
    # 25 payments, several sharing a created_at (the id breaks the tie), recorded out of order.
    existing = [f"pay_{unique}_{n:02d}" for n in range(25)]
    for n in reversed(range(25)):
        await _record(store, m, existing[n], created_at=T0 + timedelta(seconds=n // 3))
    arrived: list[str] = []

    async def more_arrive() -> None:
        # New payments keep coming while the merchant pages through: newer ones, and one at the very
        # instant of an existing payment.
        for _ in range(2):
            payment_id = f"pay_{unique}_new{len(arrived):02d}"
            arrived.append(payment_id)
            await _record(store, m, payment_id, created_at=T0 + timedelta(minutes=5 + len(arrived)))
        tie = f"pay_{unique}_tie{len(arrived):02d}"
        arrived.append(tie)
        await _record(store, m, tie, created_at=T0 + timedelta(seconds=8))

    seen = await _walk(store, m, 4, between_pages=more_arrive)
    assert len(seen) == len(set(seen))  # no duplicates
    assert set(existing) <= set(seen)  # no gaps: every payment there before the walk is seen
    # And in order: newest first, ties by id descending.
    assert [s for s in seen if s in existing] == sorted(
        existing, key=lambda i: (int(i[-2:]) // 3, i), reverse=True
    )
    # A walk after the arrivals sees everything exactly once.
    assert sorted(await _walk(store, m, 7)) == sorted(existing + arrived)


async def test_customers_and_saved_methods(engine: AsyncEngine, unique: str) -> None:
    customers = CustomerStore(engine)
    customer = CustomerRecord(id=f"cust_{unique}", merchant_id="m", email="ada@example.com", created_at=T0)
    assert await customers.create_customer(customer) == customer
    # A replay keeps the first: the create is idempotent.
    assert (
        await customers.create_customer(customer.model_copy(update={"created_at": T0 + timedelta(1)}))
        == customer
    )

    assert await customers.provider_customer(customer.id, "stripe") is None
    assert await customers.record_provider_customer(customer.id, "stripe", "cus_A") == "cus_A"
    assert await customers.record_provider_customer(customer.id, "stripe", "cus_B") == "cus_A"  # first wins

    method = SavedMethodRecord(
        id=f"spm_{unique}",
        merchant_id="m",
        customer_id=customer.id,
        gateway="stripe",
        provider_method_id="pm_1",
        type="card",
        brand="visa",
        last4="4242",
        exp_month=12,
        exp_year=2034,
        created_at=T0,
    )
    assert await customers.save_method(method) == method
    assert await customers.list_methods(customer.id) == [method]
    detached = await customers.mark_detached(method.id, T0 + timedelta(hours=1))
    assert detached is not None and detached.detached_at == T0 + timedelta(hours=1)
    assert await customers.list_methods(customer.id) == []
    again = await customers.mark_detached(method.id, T0 + timedelta(hours=2))
    assert again is not None and again.detached_at == T0 + timedelta(hours=1)  # the first detach stays
