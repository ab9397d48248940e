import asyncio
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.exc import StatementError
from sqlalchemy.ext.asyncio import AsyncEngine

from activities.store.repository import PaymentStore
from activities.store.tables import payment_events, payments, rate_limit_hits, webhook_inbox
from tests.activities.store.helpers import T0, engine, make_view, store
from workflows.domain import (
    Failure,
    FraudDecision,
    FraudResult,
    PaymentStatus,
    WalletMethod,
)
from workflows.ledger_io import PaymentEventRecord, PaymentTransition
from workflows.money import Amount
from workflows.webhook_inbox import WebhookOutcome


def transition(view, *events: str, **data: str) -> PaymentTransition:
    return PaymentTransition(view=view, events=[PaymentEventRecord(type=e, data=data) for e in events])


async def row(engine: AsyncEngine, payment_id: str) -> dict:
    async with engine.connect() as conn:
        found = (await conn.execute(select(payments).where(payments.c.id == payment_id))).mappings().one()
    return dict(found)


# ---------------------------------------------------------------------- projection


async def test_a_transition_is_projected_into_columns_and_the_view(
    store: PaymentStore, engine: AsyncEngine, unique: str
) -> None:
    view = make_view(
        f"pay_{unique}",
        status=PaymentStatus.FAILED,
        amount=Amount(minor=9_007_199_254_740_993, currency="JPY"),  # beyond 2**53: no float on the way
        provider_payment_id="pi_123",
        failure=Failure(code="card_declined", message="declined"),
        fraud=FraudResult(score=42, decision=FraudDecision.ALLOW, reasons=["high_amount"]),
        completed_at=T0 + timedelta(minutes=1),
    )
    await store.record_transition(transition(view, "payment.failed"))

    assert await store.get(view.id) == view
    stored = await row(engine, view.id)
    assert stored["amount_minor"] == 9_007_199_254_740_993 and stored["currency"] == "JPY"
    assert (stored["status"], stored["method_type"], stored["card_last4"], stored["card_brand"]) == (
        "failed",
        "card",
        "4242",
        "visa",
    )
    assert (stored["card_fingerprint"], stored["customer_ip"]) == (f"fp_pay_{unique}", "203.0.113.7")
    assert (stored["failure_code"], stored["fraud_score"], stored["version"]) == ("card_declined", 42, 1)
    assert stored["completed_at"] == T0 + timedelta(minutes=1)


async def test_a_wallet_payment_has_no_card_columns(
    store: PaymentStore, engine: AsyncEngine, unique: str
) -> None:
    view = make_view(f"pay_{unique}", method=WalletMethod(wallet="wechat_pay", flow="native"))
    await store.record_transition(transition(view))
    stored = await row(engine, view.id)
    assert stored["method_type"] == "wallet"
    assert (stored["card_last4"], stored["card_brand"], stored["card_fingerprint"]) == (None, None, None)


async def test_times_in_any_zone_come_back_as_the_same_instant_in_utc(
    store: PaymentStore, unique: str
) -> None:
    tokyo = timezone(timedelta(hours=9))
    created = datetime(2030, 1, 1, 21, 0, tzinfo=tokyo)
    await store.record_transition(
        transition(make_view(f"pay_{unique}", created_at=created, updated_at=created))
    )
    got = await store.get(f"pay_{unique}")
    assert got.created_at == created
    async with store._engine.connect() as conn:
        stored = await conn.scalar(select(payments.c.created_at).where(payments.c.id == f"pay_{unique}"))
    assert stored.tzinfo is not None and stored.utcoffset() == timedelta(0) and stored == created


async def test_naive_times_are_refused(store: PaymentStore, unique: str) -> None:
    with pytest.raises(StatementError, match="naive datetime"):
        await store.count_recent(datetime(2030, 1, 1), {"customer_id": "c"})


async def test_an_older_or_repeated_version_never_moves_the_projection_back(
    store: PaymentStore, unique: str
) -> None:
    pid = f"pay_{unique}"
    v1 = make_view(pid, version=1)
    v2 = make_view(pid, version=2, status=PaymentStatus.AUTHORIZED, updated_at=T0 + timedelta(seconds=5))
    v3 = make_view(
        pid, version=3, status=PaymentStatus.PAID, captured_minor=4999, updated_at=T0 + timedelta(seconds=9)
    )

    await store.record_transition(transition(v2, "payment.authorized"))
    await store.record_transition(transition(v1, "payment.created"))  # arrives late
    assert await store.get(pid) == v2

    await store.record_transition(transition(v3, "payment.captured", "order.paid"))
    await store.record_transition(transition(v2, "payment.authorized"))  # a retry of an old step
    await store.record_transition(
        transition(v3.model_copy(update={"status": PaymentStatus.FAILED}))
    )  # same version
    assert await store.get(pid) == v3

    # The late event is kept (it happened), each exactly once, in version order.
    assert [(e.version, e.type) for e in await store.events(pid)] == [
        (1, "payment.created"),
        (2, "payment.authorized"),
        (3, "payment.captured"),
        (3, "order.paid"),
    ]


async def test_a_retried_transition_stores_its_events_once(
    store: PaymentStore, engine: AsyncEngine, unique: str
) -> None:
    pid = f"pay_{unique}"
    t = transition(
        make_view(pid, updated_at=T0 + timedelta(seconds=3)),
        "refund.succeeded",
        refund_id="ref_1",
        amount="10.00 USD",
    )
    await asyncio.gather(*(store.record_transition(t) for _ in range(5)))
    await store.record_transition(t)

    [event] = await store.events(pid)
    assert (event.payment_id, event.version, event.type) == (pid, 1, "refund.succeeded")
    assert event.data == {"refund_id": "ref_1", "amount": "10.00 USD"}
    assert event.created_at == T0 + timedelta(seconds=3)  # the transition's time, stable across retries
    async with engine.connect() as conn:
        count = len(
            (await conn.execute(select(payment_events.c.id).where(payment_events.c.payment_id == pid))).all()
        )
    assert count == 1


async def test_concurrent_transitions_keep_the_newest(store: PaymentStore, unique: str) -> None:
    pid = f"pay_{unique}"
    views = [make_view(pid, version=v, captured_minor=v) for v in range(1, 11)]
    await asyncio.gather(
        *(store.record_transition(transition(v, f"step.{v.version}")) for v in reversed(views))
    )
    assert (await store.get(pid)).version == 10
    assert len(await store.events(pid)) == 10


# ---------------------------------------------------------------------- queries


async def test_lookups_by_order_and_provider_reference(store: PaymentStore, unique: str) -> None:
    order = f"ord_{unique}"
    first = make_view(f"pay_a{unique}", order_id=order, provider_payment_id=f"pi_{unique}")
    second = make_view(
        f"pay_b{unique}", order_id=order, created_at=T0 + timedelta(seconds=1), gateway="stripe"
    )
    for view in (second, first):
        await store.record_transition(transition(view))

    assert await store.list_by_order(order) == [first, second]
    assert await store.list_by_order(f"other_{unique}") == []
    assert await store.get(f"missing_{unique}") is None
    assert await store.payment_id_for_provider_ref("mock", f"pi_{unique}") == first.id
    assert (
        await store.payment_id_for_provider_ref("stripe", f"pi_{unique}") is None
    )  # other gateway's id space


async def test_list_payments_filters_by_status_and_creation_time(store: PaymentStore, unique: str) -> None:
    # A period of its own, so other tests' payments (on a shared database) stay out of it.
    base = datetime(2031, 3, 1, tzinfo=UTC) + timedelta(days=int(unique[:6], 16) % 3000)
    statuses = [PaymentStatus.PAID, PaymentStatus.FAILED, PaymentStatus.OUTCOME_UNKNOWN, PaymentStatus.PAID]
    views = [
        make_view(
            f"pay_{i}{unique}",
            status=s,
            created_at=base + timedelta(minutes=i),
            updated_at=base + timedelta(minutes=i),
        )
        for i, s in enumerate(statuses)
    ]
    for view in views:
        await store.record_transition(transition(view))
    window = dict(since=base, until=base + timedelta(minutes=4))

    assert await store.list_payments(**window) == views
    assert await store.list_payments(PaymentStatus.PAID, **window) == [views[0], views[3]]
    assert (
        await store.list_payments({PaymentStatus.FAILED, PaymentStatus.OUTCOME_UNKNOWN}, **window)
        == views[1:3]
    )
    assert (
        await store.list_payments(since=base + timedelta(minutes=1), until=base + timedelta(minutes=3))
        == views[1:3]
    )
    assert await store.list_payments(limit=2, **window) == views[:2]
    with pytest.raises(ValueError):
        await store.list_payments(limit=0)


async def test_count_recent_counts_each_key_since_a_moment(store: PaymentStore, unique: str) -> None:
    card = f"fp_{unique}"
    for i, minutes in enumerate((0, 10, 20, 30)):
        view = make_view(
            f"pay_{i}{unique}",
            customer_id=f"cus_{unique}" if i < 2 else None,
            customer_ip=f"198.51.{int(unique[:4], 16) % 256}.{i % 2}",
            method=make_view("x").method.model_copy(update={"fingerprint": card}),
            created_at=T0 + timedelta(minutes=minutes),
        )
        await store.record_transition(transition(view))

    assert await store.count_recent(T0, {"card_fingerprint": card}) == {"card_fingerprint": 4}
    later = T0 + timedelta(minutes=10)
    assert await store.count_recent(later, {"card_fingerprint": card}) == {"card_fingerprint": 3}  # inclusive
    assert await store.count_recent(T0 + timedelta(hours=1), {"card_fingerprint": card}) == {
        "card_fingerprint": 0
    }
    # All of a check's keys at once, each counted apart, as the fraud rules ask.
    ip = f"198.51.{int(unique[:4], 16) % 256}.1"
    keys = {"customer_id": f"cus_{unique}", "customer_ip": ip, "card_fingerprint": card}
    assert await store.count_recent(T0, keys) == {"customer_id": 2, "customer_ip": 2, "card_fingerprint": 4}
    in_window = await store.count_recent(later, keys, exclude_payment_id=f"pay_3{unique}")
    assert in_window == {"customer_id": 1, "customer_ip": 1, "card_fingerprint": 2}
    assert await store.count_recent(T0, {}) == {}
    with pytest.raises(ValueError, match="cannot count payments by 'order_id'"):
        await store.count_recent(T0, {"order_id": "o"})


# ---------------------------------------------------------------------- webhook inbox


async def test_a_duplicate_webhook_delivery_is_reported_and_changes_nothing(
    store: PaymentStore, unique: str
) -> None:
    event = f"evt_{unique}"
    assert await store.record_webhook(
        "stripe", event, "pay_1", True, WebhookOutcome.SIGNALLED, "payment_intent.succeeded"
    )
    assert not await store.record_webhook(
        "stripe", event, None, True, WebhookOutcome.UNKNOWN_PAYMENT, "other"
    )
    assert await store.webhook_outcome("stripe", event) is WebhookOutcome.SIGNALLED
    # The same id from another provider is another event.
    assert await store.record_webhook(
        "alipay", event, None, True, WebhookOutcome.UNKNOWN_PAYMENT, "TRADE_FINISHED"
    )
    assert await store.webhook_outcome("alipay", event) is WebhookOutcome.UNKNOWN_PAYMENT
    assert await store.webhook_outcome("stripe", f"never_{unique}") is None


async def test_concurrent_deliveries_of_one_event_record_it_once(store: PaymentStore, unique: str) -> None:
    results = await asyncio.gather(
        *(
            store.record_webhook("stripe", f"evt_{unique}", "pay_1", True, WebhookOutcome.SIGNALLED, "t")
            for _ in range(6)
        )
    )
    assert sorted(results) == [False] * 5 + [True]


async def test_unverified_deliveries_never_shadow_the_genuine_event(store: PaymentStore, unique: str) -> None:
    event = f"evt_{unique}"
    # A forged request naming a real event id, twice: both recorded, neither counts as the event.
    assert await store.record_webhook("stripe", event, None, False, WebhookOutcome.REJECTED, None)
    assert await store.record_webhook("stripe", event, None, False, WebhookOutcome.REJECTED, None)
    assert await store.webhook_outcome("stripe", event) is None
    assert await store.record_webhook("stripe", event, "pay_1", True, WebhookOutcome.SIGNALLED, "t")
    assert await store.webhook_outcome("stripe", event) is WebhookOutcome.SIGNALLED
    # Deliveries without an event id cannot be de-duplicated, so each is recorded.
    assert await store.record_webhook("stripe", None, None, True, WebhookOutcome.UNKNOWN_PAYMENT, "ping")
    assert await store.record_webhook("stripe", None, None, True, WebhookOutcome.UNKNOWN_PAYMENT, "ping")


# ---------------------------------------------------------------------- rate limits


async def test_rate_limit_allows_up_to_the_limit_per_window(store: PaymentStore, unique: str) -> None:
    key = f"api:{unique}"
    start = datetime(2030, 1, 1, 0, 1, 0, tzinfo=UTC)  # a 60 s window boundary
    at = lambda seconds: start + timedelta(seconds=seconds)  # noqa: E731

    assert [await store.hit(key, 60, 3, now=at(s)) for s in (0, 10, 20)] == [(True, 0)] * 3
    assert await store.hit(key, 60, 3, now=at(45.5)) == (False, 15)  # rounds up: never retry early
    assert await store.hit(f"other:{unique}", 60, 3, now=at(46)) == (True, 0)  # keys are independent
    assert await store.hit(key, 60, 3, now=at(60)) == (True, 0)  # a new window

    # Finished windows are dropped: one row per key.
    async with store._engine.connect() as conn:
        rows = (
            (await conn.execute(select(rate_limit_hits).where(rate_limit_hits.c.key == key))).mappings().all()
        )
    assert [(r["window_start"], r["count"]) for r in rows] == [(int(at(60).timestamp()), 1)]


async def test_rate_limit_counts_concurrent_hits_exactly(store: PaymentStore, unique: str) -> None:
    now = datetime(2030, 1, 1, 0, 0, 30, tzinfo=UTC)
    results = await asyncio.gather(*(store.hit(f"ip:{unique}", 60, 5, now=now) for _ in range(12)))
    assert sorted(allowed for allowed, _ in results) == [False] * 7 + [True] * 5
    assert {retry for allowed, retry in results if not allowed} == {30}


async def test_rate_limit_counts_several_keys_in_one_call(store: PaymentStore, unique: str) -> None:
    start = datetime(2030, 1, 1, 0, 0, 0, tzinfo=UTC)  # a window boundary of 60 s and of 600 s
    at = lambda seconds: start + timedelta(seconds=seconds)  # noqa: E731
    order, ip = f"order:{unique}", f"ip:{unique}"
    hits = [(order, 60, 1), (ip, 600, 2)]
    assert await store.hit_many(hits, now=at(0)) == [(True, 0), (True, 0)]
    # Answered in the order asked, each by its own window and limit.
    assert await store.hit_many(hits, now=at(10)) == [(False, 50), (True, 0)]
    assert await store.hit_many(list(reversed(hits)), now=at(70)) == [(False, 530), (True, 0)]
    assert await store.hit(order, 60, 1, now=at(70)) == (False, 50)  # the same count as `hit`'s
    async with store._engine.connect() as conn:
        rows = (await conn.execute(select(rate_limit_hits.c.key, rate_limit_hits.c.count))).all()
    # The finished window of `order` is gone: one row per key.
    assert sorted(row for row in rows if row[0] in (order, ip)) == [(ip, 3), (order, 2)]
    with pytest.raises(ValueError):
        await store.hit_many([(order, 60, 1), (order, 600, 1)])


async def test_rate_limit_rejects_nonsense_arguments(store: PaymentStore) -> None:
    with pytest.raises(ValueError):
        await store.hit("k", 0, 5)
    with pytest.raises(ValueError):
        await store.hit("k", 60, -1)


async def test_rejected_deliveries_keep_a_bounded_sample_per_gateway(
    engine: AsyncEngine, unique: str
) -> None:
    """Issue #17 item 6: forged bodies must not grow the inbox without bound. The newest rejected
    deliveries of a gateway are kept (a sample for investigation); verified ones are never pruned."""
    store = PaymentStore(engine, rejected_webhooks_kept=3)
    gateway = f"gw_{unique}"[:64]
    assert await store.record_webhook(gateway, f"evt_{unique}", "pay_1", True, WebhookOutcome.SIGNALLED, "t")
    for i in range(7):
        assert await store.record_webhook(
            gateway, f"unverified:{i}", None, False, WebhookOutcome.REJECTED, None
        )
    async with engine.connect() as conn:
        kept = (
            await conn.execute(
                select(webhook_inbox.c.event_id, webhook_inbox.c.verified)
                .where(webhook_inbox.c.gateway == gateway)
                .order_by(webhook_inbox.c.id)
            )
        ).all()
    assert [tuple(r) for r in kept] == [
        (f"evt_{unique}", True),
        ("unverified:4", False),
        ("unverified:5", False),
        ("unverified:6", False),
    ]


async def test_deliveries_recorded_together_answer_each_its_own(store: PaymentStore, unique: str) -> None:
    assert await store.record_webhook(
        "stripe", f"evt_{unique}_0", "pay_0", True, WebhookOutcome.SIGNALLED, "t"
    )
    # Recorded in one statement with the others in flight: the one already there, and the second
    # of a pair, are not recorded again; every other is.
    events = [f"evt_{unique}_{i}" for i in range(8)] + [f"evt_{unique}_3"]
    results = await asyncio.gather(
        *(store.record_webhook("stripe", e, "pay_1", True, WebhookOutcome.SIGNALLED, "t") for e in events)
    )
    assert results == [False] + [True] * 7 + [False]
    assert await store.webhook_outcome("stripe", f"evt_{unique}_5") is WebhookOutcome.SIGNALLED
