"""`CustomerStore`: a merchant's customers, the gateway-side customer each gateway keeps them under,
and their saved payment methods. Every write is one transaction and safe to repeat."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from activities.store.db import write_transaction
from activities.store.repository import upsert_insert
from activities.store.tables import customer_gateway_accounts, customers, saved_payment_methods
from workflows.customer_io import CustomerRecord, SavedMethodRecord


class CustomerStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create_customer(self, customer: CustomerRecord) -> CustomerRecord:
        """Insert `customer` unless its id exists; the stored one either way (a replayed create)."""
        async with write_transaction(self._engine) as conn:
            insert = upsert_insert(conn, customers).values(**customer.model_dump())
            await conn.execute(insert.on_conflict_do_nothing(index_elements=[customers.c.id]))
        stored = await self.get_customer(customer.id)
        assert stored is not None  # just written, and customers are never deleted
        return stored

    async def get_customer(self, customer_id: str) -> CustomerRecord | None:
        async with self._engine.connect() as conn:
            row = (
                (await conn.execute(select(customers).where(customers.c.id == customer_id)))
                .mappings()
                .first()
            )
        return None if row is None else CustomerRecord.model_validate(dict(row))

    async def provider_customer(self, customer_id: str, gateway: str) -> str | None:
        query = select(customer_gateway_accounts.c.provider_customer_id).where(
            customer_gateway_accounts.c.customer_id == customer_id,
            customer_gateway_accounts.c.gateway == gateway,
        )
        async with self._engine.connect() as conn:
            return await conn.scalar(query)

    async def record_provider_customer(
        self, customer_id: str, gateway: str, provider_customer_id: str
    ) -> str:
        """Keep the gateway's customer for ours; the first one recorded wins (returned)."""
        async with write_transaction(self._engine) as conn:
            insert = upsert_insert(conn, customer_gateway_accounts).values(
                customer_id=customer_id, gateway=gateway, provider_customer_id=provider_customer_id
            )
            await conn.execute(insert.on_conflict_do_nothing(index_elements=["customer_id", "gateway"]))
        stored = await self.provider_customer(customer_id, gateway)
        assert stored is not None
        return stored

    async def save_method(self, method: SavedMethodRecord) -> SavedMethodRecord:
        """Insert `method` unless its id exists; the stored one either way."""
        async with write_transaction(self._engine) as conn:
            insert = upsert_insert(conn, saved_payment_methods).values(**method.model_dump())
            await conn.execute(insert.on_conflict_do_nothing(index_elements=[saved_payment_methods.c.id]))
        stored = await self.get_method(method.id)
        assert stored is not None
        return stored

    async def get_method(self, method_id: str) -> SavedMethodRecord | None:
        query = select(saved_payment_methods).where(saved_payment_methods.c.id == method_id)
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        return None if row is None else SavedMethodRecord.model_validate(dict(row))

    async def list_methods(self, customer_id: str) -> list[SavedMethodRecord]:
        """The customer's methods not detached, oldest first."""
        query = (
            select(saved_payment_methods)
            .where(
                saved_payment_methods.c.customer_id == customer_id,
                saved_payment_methods.c.detached_at.is_(None),
            )
            .order_by(saved_payment_methods.c.created_at, saved_payment_methods.c.id)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [SavedMethodRecord.model_validate(dict(row)) for row in rows]

    async def mark_detached(self, method_id: str, at: datetime) -> SavedMethodRecord | None:
        """Mark the method detached (the first time only)."""
        async with write_transaction(self._engine) as conn:
            await conn.execute(
                update(saved_payment_methods)
                .where(saved_payment_methods.c.id == method_id, saved_payment_methods.c.detached_at.is_(None))
                .values(detached_at=at)
            )
        return await self.get_method(method_id)
