"""`PaymentStore`: the payments projection, its events, the webhook inbox, fraud velocity counts
and API rate-limit windows. Every write is one transaction and safe to repeat."""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict
from sqlalchemy import (
    ColumnElement,
    String,
    Table,
    and_,
    bindparam,
    delete,
    func,
    literal,
    or_,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from activities.store.db import single_statement, write_transaction
from activities.store.group_commit import GroupCommit
from activities.store.tables import (
    WEBHOOK_DEDUP_WHERE,
    UtcDateTime,
    merchant_event_attempts,
    merchant_events,
    payment_events,
    payments,
    rate_limit_hits,
    webhook_inbox,
)
from workflows.domain import CardMethod, PaymentStatus, PaymentView
from workflows.ledger_io import PaymentTransition
from workflows.merchant_events import (
    DeliveryAttempt,
    DeliveryStatus,
    MerchantEvent,
    StoredMerchantEvent,
)
from workflows.webhook_inbox import WebhookOutcome

# Both speak the same `on_conflict_do_nothing` / `on_conflict_do_update` API.
_INSERTS: dict[str, Callable[[Table], Any]] = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


def upsert_insert(conn: AsyncConnection, table: Table) -> Any:
    """An INSERT that supports ON CONFLICT for the connection's dialect (both speak the same
    `on_conflict_do_nothing` / `on_conflict_do_update` API)."""
    return dialect_insert(conn.dialect.name, table)


def dialect_insert(dialect: str, table: Table) -> Any:
    """`upsert_insert` by dialect name, for statements built once and kept."""
    insert = _INSERTS.get(dialect)
    if insert is not None:
        return insert(table)
    raise NotImplementedError(f"durapay's store supports SQLite and PostgreSQL, not {dialect}")


class _TransitionWrites(NamedTuple):
    projection: Any  # the payment's row, moved only forward
    events: Any  # its events, each once; RETURNING names those stored now
    merchant: Any  # the merchant events they raised, each once


@functools.cache
def _transition_writes(dialect: str, projected: tuple[str, ...]) -> _TransitionWrites:
    """`record_transition`'s statements, built once per dialect and executed with each call's
    values as parameters: building them per call (the upsert's EXCLUDED alias of the whole table,
    the VALUES clauses) cost about half of that call's CPU, and only their parameters change."""
    insert = functools.partial(dialect_insert, dialect)
    projection = insert(payments)
    projection = projection.on_conflict_do_update(
        index_elements=[payments.c.id],
        set_={name: projection.excluded[name] for name in projected if name not in ("id", "created_at")},
        where=payments.c.version < projection.excluded.version,
    )
    events = (
        insert(payment_events)
        .on_conflict_do_nothing(index_elements=["payment_id", "version", "type"])
        .returning(payment_events.c.id)
    )
    merchant = insert(merchant_events).on_conflict_do_nothing(index_elements=["id"])
    return _TransitionWrites(projection, events, merchant)


# What the fraud rules count recent payments by (`count_recent`): each has its own index.
_VELOCITY_KEYS = frozenset({"customer_id", "customer_ip", "card_fingerprint"})


# The request path's reads, built once and run with parameters (as `_webhook_insert`).
_VIEW_OF = select(payments.c.view).where(payments.c.id == bindparam("id"))
_RECORDED_AMONG = select(payments.c.id).where(payments.c.id.in_(bindparam("ids", expanding=True)))

_WEBHOOK_COLUMNS = ("gateway", "event_id", "payment_id", "verified", "outcome", "event_type", "received_at")


@functools.cache
def _webhook_insert(dialect: str) -> Any:
    """The inbox INSERT, built once per dialect and run with the delivery as parameters: building
    it anew took a third of the receiver's write (0.3 of 0.9 ms CPU)."""
    return (
        dialect_insert(dialect, webhook_inbox)
        .values({name: bindparam(name) for name in _WEBHOOK_COLUMNS})
        .on_conflict_do_nothing(index_elements=["gateway", "event_id"], index_where=text(WEBHOOK_DEDUP_WHERE))
        .returning(webhook_inbox.c.gateway, webhook_inbox.c.event_id)
    )


class StoredEvent(BaseModel):
    """One recorded payment event, in the order the workflow raised it."""

    model_config = ConfigDict(frozen=True)

    payment_id: str
    version: int
    type: str
    data: dict[str, str]
    created_at: datetime


class WaitingPayments(BaseModel):
    """The payments in one status: how many, and the last transition of the one waiting longest."""

    model_config = ConfigDict(frozen=True)

    count: int
    oldest_update: datetime


class PaymentStore:
    def __init__(self, engine: AsyncEngine, *, rejected_webhooks_kept: int = 1000) -> None:
        """`rejected_webhooks_kept`: how many of a gateway's newest rejected deliveries the inbox
        keeps; older ones are pruned as new ones come (verified deliveries are never pruned)."""
        if rejected_webhooks_kept <= 0:
            raise ValueError("rejected_webhooks_kept must be positive")
        self._engine = engine
        self._rejected_kept = rejected_webhooks_kept
        # Verified deliveries that arrive together are recorded in one statement (group_commit).
        self._verified_webhooks = GroupCommit(self._insert_verified_webhooks)

    # ------------------------------------------------------------------ payments

    async def record_transition(
        self,
        t: PaymentTransition,
        merchant: Sequence[tuple[MerchantEvent, DeliveryStatus]] = (),
    ) -> bool:
        """Apply one workflow transition: the projection moves only forward (a retried or late
        write with an older or equal version changes nothing), events are stored once. The
        `merchant` events it raised are written in the same transaction (an outbox: none is lost
        between the store and the webhook delivery), each with its first delivery status. True when
        this call stored the transition's events (its first successful write), so that callers
        count each transition once however often Temporal retries it."""
        view = t.view
        row = _projection(view)
        stored_now = False
        async with write_transaction(self._engine) as conn:
            writes = _transition_writes(conn.dialect.name, tuple(row))
            await conn.execute(writes.projection, row)
            if t.events:
                # Inserted even when the view was stale: a retry of a transition whose first
                # attempt never committed must still leave its events behind; the unique key
                # (payment_id, version, type) makes a repeat a no-op.
                stored = await conn.execute(
                    writes.events,
                    [
                        {
                            "payment_id": view.id,
                            "version": view.version,
                            "type": event.type,
                            "data": event.data,
                            # The transition's own time, not the wall clock: a retry writes
                            # exactly the same row.
                            "created_at": view.updated_at,
                        }
                        for event in t.events
                    ],
                )
                # RETURNING names the rows inserted now (rowcount is -1 on PostgreSQL here).
                stored_now = bool(stored.all())
            if merchant:
                rows = [
                    {
                        **event.model_dump(mode="json"),
                        "created_at": event.created_at,
                        "delivery_status": status,
                    }
                    for event, status in merchant
                ]
                await conn.execute(writes.merchant, rows)
        return stored_now

    async def get(self, payment_id: str) -> PaymentView | None:
        async with single_statement(self._engine, writes=False) as conn:
            stored = await conn.scalar(_VIEW_OF, {"id": payment_id})
        return None if stored is None else PaymentView.model_validate(stored)

    async def recorded(self, payment_ids: Collection[str]) -> set[str]:
        """Which of `payment_ids` the store holds: one query for several ids, and no view read."""
        async with single_statement(self._engine, writes=False) as conn:
            return set((await conn.execute(_RECORDED_AMONG, {"ids": list(payment_ids)})).scalars())

    async def list_by_order(self, order_id: str) -> list[PaymentView]:
        query = (
            select(payments.c.view)
            .where(payments.c.order_id == order_id)
            .order_by(payments.c.created_at, payments.c.id)
        )
        return await self._views(query)

    async def list_payments(
        self,
        status: PaymentStatus | Collection[PaymentStatus] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[PaymentView]:
        """Payments created in [since, until), oldest first, optionally only in `status` (one
        status or several)."""
        if limit <= 0:
            raise ValueError("limit must be positive")
        conditions: list[ColumnElement[bool]] = []
        if isinstance(status, PaymentStatus):
            conditions.append(payments.c.status == status.value)
        elif status is not None:
            conditions.append(payments.c.status.in_([PaymentStatus(s).value for s in status]))
        if since is not None:
            conditions.append(payments.c.created_at >= since)
        if until is not None:
            conditions.append(payments.c.created_at < until)
        query = (
            select(payments.c.view)
            .where(*conditions)
            .order_by(payments.c.created_at, payments.c.id)
            .limit(limit)
        )
        return await self._views(query)

    async def page(
        self,
        merchant_id: str,
        *,
        status: PaymentStatus | None = None,
        gateway: str | None = None,
        order_id: str | None = None,
        customer_id: str | None = None,
        provider_payment_id: str | None = None,
        created_gte: datetime | None = None,
        created_lt: datetime | None = None,
        after: tuple[datetime, str] | None = None,
        limit: int = 10,
    ) -> tuple[list[PaymentView], bool]:
        """One page of the merchant's payments, newest first (created_at, then id, descending),
        strictly after the `after` (created_at, id) position; and whether more follow.

        Keyset paging, never OFFSET: a page costs the same however deep it is, and payments
        arriving meanwhile (newer than any page already read) cannot shift later pages into
        duplicates or gaps."""
        if limit <= 0:
            raise ValueError("limit must be positive")
        conditions: list[ColumnElement[bool]] = [payments.c.merchant_id == merchant_id]
        for column, value in (
            (payments.c.status, status.value if status else None),
            (payments.c.gateway, gateway),
            (payments.c.order_id, order_id),
            (payments.c.customer_id, customer_id),
            (payments.c.provider_payment_id, provider_payment_id),
        ):
            if value is not None:
                conditions.append(column == value)
        if created_gte is not None:
            conditions.append(payments.c.created_at >= created_gte)
        if created_lt is not None:
            conditions.append(payments.c.created_at < created_lt)
        if after is not None:
            conditions.append(
                tuple_(payments.c.created_at, payments.c.id)
                < tuple_(literal(after[0], UtcDateTime), literal(after[1], String))
            )
        query = (
            select(payments.c.view)
            .where(*conditions)
            .order_by(payments.c.created_at.desc(), payments.c.id.desc())
            .limit(limit + 1)
        )
        views = await self._views(query)
        return views[:limit], len(views) > limit

    async def position(self, merchant_id: str, payment_id: str) -> tuple[datetime, str] | None:
        """Where `payment_id` sits in the merchant's list (a `page` cursor), if it is the merchant's."""
        query = select(payments.c.created_at).where(
            payments.c.id == payment_id, payments.c.merchant_id == merchant_id
        )
        async with self._engine.connect() as conn:
            created_at = await conn.scalar(query)
        return None if created_at is None else (created_at, payment_id)

    async def payment_id_for_provider_ref(self, gateway: str, provider_payment_id: str) -> str | None:
        """Our payment id for a provider's payment id: how a webhook that only carries the
        provider's reference finds its workflow."""
        query = select(payments.c.id).where(
            payments.c.provider_payment_id == provider_payment_id, payments.c.gateway == gateway
        )
        async with single_statement(self._engine, writes=False) as conn:
            return (await conn.execute(query.limit(1))).scalar_one_or_none()

    async def events(self, payment_id: str) -> list[StoredEvent]:
        query = (
            select(
                payment_events.c.payment_id,
                payment_events.c.version,
                payment_events.c.type,
                payment_events.c.data,
                payment_events.c.created_at,
            )
            .where(payment_events.c.payment_id == payment_id)
            .order_by(payment_events.c.version, payment_events.c.id)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [StoredEvent.model_validate(dict(row)) for row in rows]

    async def count_recent(
        self, since: datetime, keys: Mapping[str, str], *, exclude_payment_id: str | None = None
    ) -> dict[str, int]:
        """How many payments were created at or after `since` with each of `keys` (column name:
        value; customer_id, customer_ip or card_fingerprint), each key counted apart, not counting
        `exclude_payment_id` (the payment being checked, which may or may not be recorded yet).
        One statement: the fraud rules' velocity counts cost one round trip and one pooled
        connection, not one per key."""
        counts = []
        for key, value in keys.items():
            if key not in _VELOCITY_KEYS:
                raise ValueError(f"cannot count payments by {key!r}")
            count = (
                select(func.count())
                .select_from(payments)
                .where(payments.c[key] == value, payments.c.created_at >= since)
            )
            if exclude_payment_id is not None:
                count = count.where(payments.c.id != exclude_payment_id)
            counts.append(count.scalar_subquery().label(key))
        if not counts:
            return {}
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(*counts))).mappings().one()
        return {key: int(row[key]) for key in keys}

    async def waiting(self, statuses: Collection[PaymentStatus]) -> dict[PaymentStatus, WaitingPayments]:
        """How many payments are in each of `statuses` now, and since when the longest-waiting
        one has not moved (its last transition); a status with no payment is absent."""
        query = (
            select(payments.c.status, func.count(), func.min(payments.c.updated_at))
            .where(payments.c.status.in_([PaymentStatus(s).value for s in statuses]))
            .group_by(payments.c.status)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return {
            PaymentStatus(status): WaitingPayments(count=count, oldest_update=oldest)
            for status, count, oldest in rows
        }

    async def _views(self, query: Any) -> list[PaymentView]:
        async with self._engine.connect() as conn:
            stored = (await conn.execute(query)).scalars().all()
        return [PaymentView.model_validate(view) for view in stored]

    # ------------------------------------------------------------------ webhook inbox

    async def record_webhook(
        self,
        gateway: str,
        event_id: str | None,
        payment_id: str | None,
        verified: bool,
        outcome: WebhookOutcome,
        event_type: str | None,
    ) -> bool:
        """Record one webhook delivery. Returns False, and changes nothing, when a verified
        delivery of the same (gateway, event_id) is already recorded.

        Unverified deliveries are recorded (True) and never de-duplicated: their event id is
        whatever the sender wrote, and must not block the genuine event carrying that id. Only the
        newest `rejected_webhooks_kept` of a gateway stay: forged bodies cannot grow the table
        without bound (the receiver also records only a sample of them, api/rejection_sample.py).
        Receivers should signal the workflow (which de-duplicates by event id itself) before
        recording, so a crash between the two leads to a redelivery rather than a lost event.
        """
        row = {
            "gateway": gateway,
            "event_id": event_id,
            "payment_id": payment_id,
            "verified": verified,
            "outcome": WebhookOutcome(outcome).value,
            "event_type": event_type,
            "received_at": datetime.now(UTC),
        }
        if verified:  # the receiver's hot path: together with the others in flight, one statement
            return await self._verified_webhooks.submit(row)
        # A rejected one also prunes the oldest rejected, in the same transaction.
        async with write_transaction(self._engine) as conn:
            recorded = bool((await conn.execute(_webhook_insert(conn.dialect.name), [row])).all())
            await conn.execute(self._prune_rejected(gateway))
            return recorded

    async def _insert_verified_webhooks(self, rows: Sequence[dict[str, Any]]) -> list[bool]:
        """One INSERT of `rows`, atomic on its own; per row, whether this call recorded it (False:
        its (gateway, event_id) was recorded already, before or earlier in `rows`)."""
        async with single_statement(self._engine, writes=True) as conn:
            inserted = Counter(tuple(r) for r in await conn.execute(_webhook_insert(conn.dialect.name), rows))
        recorded = []
        for row in rows:
            key = (row["gateway"], row["event_id"])
            # No event id: never de-duplicated (the unique index leaves it out), always recorded.
            recorded.append(row["event_id"] is None or inserted[key] > 0)
            inserted[key] -= 1
        return recorded

    def _prune_rejected(self, gateway: str) -> Any:
        rejected = (webhook_inbox.c.gateway == gateway, webhook_inbox.c.verified.is_(False))
        oldest_kept = (
            select(webhook_inbox.c.id)
            .where(*rejected)
            .order_by(webhook_inbox.c.id.desc())
            .offset(self._rejected_kept - 1)
            .limit(1)
            .scalar_subquery()
        )
        return delete(webhook_inbox).where(*rejected, webhook_inbox.c.id < oldest_kept)

    async def webhook_outcome(self, gateway: str, event_id: str) -> WebhookOutcome | None:
        """What became of the verified delivery of (gateway, event_id), if one was recorded."""
        query = select(webhook_inbox.c.outcome).where(
            webhook_inbox.c.gateway == gateway,
            webhook_inbox.c.event_id == event_id,
            webhook_inbox.c.verified.is_(True),
        )
        async with self._engine.connect() as conn:
            outcome = await conn.scalar(query)
        return None if outcome is None else WebhookOutcome(outcome)

    # ------------------------------------------------------------------ merchant events

    async def pending_merchant_events(self, payment_id: str) -> list[str]:
        """The payment's events still to deliver, oldest first."""
        query = (
            select(merchant_events.c.id)
            .where(
                merchant_events.c.payment_id == payment_id,
                merchant_events.c.delivery_status == DeliveryStatus.PENDING.value,
            )
            .order_by(merchant_events.c.seq)
        )
        async with self._engine.connect() as conn:
            return list((await conn.execute(query)).scalars().all())

    async def payments_awaiting_delivery(self, recorded_before: datetime, limit: int = 1000) -> list[str]:
        """Payments with events pending since before `recorded_before` that no delivery has
        attempted yet: their delivery workflow was never told (see `DeliveryWaker.sweep`). A payment
        whose delivery is retrying an event has attempts and is left alone."""
        attempted = (
            select(merchant_events.c.payment_id)
            .join(merchant_event_attempts, merchant_event_attempts.c.event_id == merchant_events.c.id)
            .where(merchant_events.c.delivery_status == DeliveryStatus.PENDING.value)
        )
        query = (
            select(merchant_events.c.payment_id)
            .where(
                merchant_events.c.delivery_status == DeliveryStatus.PENDING.value,
                merchant_events.c.created_at < recorded_before,
                merchant_events.c.payment_id.not_in(attempted),
            )
            .distinct()
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            return list((await conn.execute(query)).scalars().all())

    async def merchant_event(self, event_id: str) -> StoredMerchantEvent | None:
        """One event with its delivery attempts, oldest first."""
        page = await self._merchant_events(select(merchant_events).where(merchant_events.c.id == event_id))
        return page[0] if page else None

    async def _merchant_events(self, query: Any) -> list[StoredMerchantEvent]:
        """The events `query` selects, in its order, each with its delivery attempts."""
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
            attempts: dict[str, list[DeliveryAttempt]] = {row["id"]: [] for row in rows}
            if attempts:
                found = await conn.execute(
                    select(
                        merchant_event_attempts.c.event_id,
                        merchant_event_attempts.c.attempted_at,
                        merchant_event_attempts.c.http_status,
                        merchant_event_attempts.c.latency_ms,
                        merchant_event_attempts.c.error,
                    )
                    .where(merchant_event_attempts.c.event_id.in_(list(attempts)))
                    .order_by(merchant_event_attempts.c.id)
                )
                for attempt in found.mappings():
                    fields = {k: v for k, v in attempt.items() if k != "event_id"}
                    attempts[attempt["event_id"]].append(DeliveryAttempt.model_validate(fields))
        return [_stored_event(dict(row), attempts[row["id"]]) for row in rows]

    async def list_merchant_events(
        self,
        *,
        merchant_id: str | None = None,
        payment_id: str | None = None,
        type: str | None = None,
        limit: int = 10,
        starting_after: str | None = None,
    ) -> tuple[list[StoredMerchantEvent], bool]:
        """Events newest first, after the event `starting_after` (a cursor: the last id of the
        previous page); (page, whether more follow). An unknown cursor gives an empty page.
        `merchant_id`: that merchant's events only (its cursor too); None: every merchant's."""
        if limit <= 0:
            raise ValueError("limit must be positive")
        conditions: list[ColumnElement[bool]] = []
        if merchant_id is not None:
            conditions.append(merchant_events.c.merchant_id == merchant_id)
        if payment_id is not None:
            conditions.append(merchant_events.c.payment_id == payment_id)
        if type is not None:
            conditions.append(merchant_events.c.type == type)
        if starting_after is not None:
            async with self._engine.connect() as conn:
                cursor = await conn.scalar(
                    select(merchant_events.c.seq).where(merchant_events.c.id == starting_after, *conditions)
                )
            if cursor is None:
                return [], False
            conditions.append(merchant_events.c.seq < cursor)
        query = select(merchant_events).where(*conditions).order_by(merchant_events.c.seq.desc())
        page = await self._merchant_events(query.limit(limit + 1))
        return page[:limit], len(page) > limit

    async def record_delivery_attempt(self, event_id: str, attempt: DeliveryAttempt, delivered: bool) -> None:
        """Log one attempt to deliver `event_id`; a 2xx (`delivered`) marks it delivered."""
        async with write_transaction(self._engine) as conn:
            await conn.execute(
                merchant_event_attempts.insert().values(event_id=event_id, **attempt.model_dump())
            )
            if delivered:
                await conn.execute(
                    merchant_events.update()
                    .where(merchant_events.c.id == event_id)
                    .values(delivery_status=DeliveryStatus.DELIVERED.value)
                )

    async def set_delivery_status(self, event_id: str, status: DeliveryStatus) -> bool:
        """Give up on an event (FAILED) or queue it again (PENDING). False: no such event."""
        async with write_transaction(self._engine) as conn:
            result = await conn.execute(
                merchant_events.update()
                .where(merchant_events.c.id == event_id)
                .values(delivery_status=status.value)
            )
        return result.rowcount > 0

    # ------------------------------------------------------------------ rate limits

    async def hit(
        self, key: str, window_seconds: int, limit: int, *, now: datetime | None = None
    ) -> tuple[bool, int]:
        """Count one request against `key` in the current fixed window of `window_seconds`.

        Returns (allowed, retry_after_seconds): allowed while the window holds at most `limit`
        requests; otherwise how long until the window ends. The increment is a single atomic
        upsert, so API instances sharing the database share the count. `now` is for tests.
        """
        [answer] = await self.hit_many([(key, window_seconds, limit)], now=now)
        return answer

    async def hit_many(
        self, hits: Sequence[tuple[str, int, int]], *, now: datetime | None = None
    ) -> list[tuple[bool, int]]:
        """`hit` for several distinct (key, window_seconds, limit) at once, answered in their order:
        one transaction of one upsert however many keys (a payment counts against up to three
        limits), and a delete when a key's window has just begun."""
        if len({key for key, _, _ in hits}) != len(hits):
            raise ValueError("each key may be hit once per call")
        if any(window_seconds <= 0 for _, window_seconds, _ in hits):
            raise ValueError("window_seconds must be positive")
        if any(limit < 0 for _, _, limit in hits):
            raise ValueError("limit must not be negative")
        if not hits:
            return []
        instant = (now or datetime.now(UTC)).timestamp()
        # In key order: concurrent calls sharing keys lock their rows in the same order (no deadlock).
        window_starts = {key: int(instant // window_s) * window_s for key, window_s, _ in sorted(hits)}
        async with write_transaction(self._engine) as conn:
            insert = upsert_insert(conn, rate_limit_hits).values(
                [{"key": key, "window_start": start, "count": 1} for key, start in window_starts.items()]
            )
            upsert = insert.on_conflict_do_update(
                index_elements=["key", "window_start"],
                set_={"count": rate_limit_hits.c.count + 1},
            ).returning(rate_limit_hits.c.key, rate_limit_hits.c.count)
            counts: dict[str, int] = dict((await conn.execute(upsert)).all())
            # Earlier windows of a key are over: dropped when its current window begins (its first
            # hit, count 1), so the table holds one row per key; later hits find nothing to drop.
            begun = [(key, start) for key, start in window_starts.items() if counts[key] == 1]
            if begun:
                await conn.execute(
                    delete(rate_limit_hits).where(
                        or_(
                            *(
                                and_(rate_limit_hits.c.key == key, rate_limit_hits.c.window_start < start)
                                for key, start in begun
                            )
                        )
                    )
                )
        answers = []
        for key, window_seconds, limit in hits:
            if counts[key] <= limit:
                answers.append((True, 0))
            else:
                answers.append((False, max(1, math.ceil(window_starts[key] + window_seconds - instant))))
        return answers


def _stored_event(row: Mapping[str, Any], attempts: list[DeliveryAttempt]) -> StoredMerchantEvent:
    fields = {k: v for k, v in row.items() if k != "seq"}
    return StoredMerchantEvent.model_validate({**fields, "attempts": attempts})


def _projection(view: PaymentView) -> Mapping[str, Any]:
    card = view.method if isinstance(view.method, CardMethod) else None
    return {
        "id": view.id,
        "merchant_id": view.merchant_id,
        "order_id": view.order_id,
        "gateway": view.gateway,
        "status": view.status.value,
        "amount_minor": view.amount.minor,
        "currency": view.amount.currency,
        "captured_minor": view.captured_minor,
        "refunded_minor": view.refunded_minor,
        "capture_method": view.capture_method.value,
        "customer_id": view.customer_id,
        "provider_payment_id": view.provider_payment_id,
        "method_type": view.method.type,
        "card_last4": card.last4 if card else None,
        "card_brand": card.brand if card else None,
        "card_fingerprint": card.fingerprint if card else None,
        "failure_code": view.failure.code if view.failure else None,
        "fraud_score": view.fraud.score if view.fraud else None,
        "customer_ip": view.customer_ip,
        "view": view.model_dump(mode="json"),
        "version": view.version,
        "created_at": view.created_at,
        "updated_at": view.updated_at,
        "completed_at": view.completed_at,
    }
