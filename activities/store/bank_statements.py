"""Imported bank statement lines and manual bank payouts (tables `bank_statement_lines`,
`bank_payouts_done`). A line is stored once per (account, entry reference): a re-imported statement
adds nothing. A payout task is the `bank_transfer.payout_requested` event a payment recorded; it is
open until an operator marks it done here."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy import RowMapping, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from activities.gateways.bank_transfer.statement import StatementLine
from activities.store.db import write_transaction
from activities.store.repository import upsert_insert
from activities.store.tables import bank_payouts_done, bank_statement_lines, payment_events
from workflows.money import Amount

LineOutcome = Literal["matched", "held_for_review", "unmatched"]
PAYOUT_REQUESTED = "bank_transfer.payout_requested"


class StoredLine(BaseModel):
    model_config = ConfigDict(frozen=True)

    line: StatementLine
    payment_id: str | None
    outcome: LineOutcome
    reason: str | None
    statement: str
    imported_at: datetime


class PayoutTask(BaseModel):
    """Money to send back to a payer by hand, with what the statement said about them."""

    model_config = ConfigDict(frozen=True)

    payment_id: str
    amount: str  # "60.00 EUR"
    payer_name: str
    payer_iban: str
    bank_reference: str
    requested_by: str
    requested_at: datetime
    done_by: str | None = None
    done_at: datetime | None = None


class BankStatementStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def known(self, line: StatementLine) -> StoredLine | None:
        """The line as an earlier import stored it, if one did."""
        query = select(bank_statement_lines).where(
            bank_statement_lines.c.account == line.account,
            bank_statement_lines.c.entry_reference == line.entry_reference,
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).mappings().one_or_none()
        return None if row is None else _stored(row)

    async def record(
        self,
        line: StatementLine,
        *,
        payment_id: str | None,
        outcome: LineOutcome,
        reason: str | None,
        statement: str,
    ) -> bool:
        """Store the line; False when it was there already (it is then left as it was)."""
        async with write_transaction(self._engine) as conn:
            insert = upsert_insert(conn, bank_statement_lines).values(
                account=line.account,
                entry_reference=line.entry_reference,
                amount_minor=line.amount.minor,
                currency=line.amount.currency,
                booked_on=line.booked_on.isoformat(),
                reference=line.reference,
                remittance=line.remittance[:1000],
                payer_name=line.payer_name,
                payer_iban=line.payer_iban,
                payment_id=payment_id,
                outcome=outcome,
                reason=reason,
                statement=statement[:255],
                imported_at=datetime.now(UTC),
            )
            result = await conn.execute(insert.on_conflict_do_nothing())
        return bool(result.rowcount)

    async def rematch(
        self, line: StatementLine, *, payment_id: str, outcome: LineOutcome, reason: str | None
    ) -> None:
        """A line kept unmatched for want of a payment, taken by one now."""
        async with write_transaction(self._engine) as conn:
            await conn.execute(
                update(bank_statement_lines)
                .where(
                    bank_statement_lines.c.account == line.account,
                    bank_statement_lines.c.entry_reference == line.entry_reference,
                    bank_statement_lines.c.payment_id.is_(None),
                )
                .values(payment_id=payment_id, outcome=outcome, reason=reason)
            )

    async def lines(self, outcome: LineOutcome | None = None) -> list[StoredLine]:
        query = select(bank_statement_lines).order_by(
            bank_statement_lines.c.imported_at, bank_statement_lines.c.entry_reference
        )
        if outcome is not None:
            query = query.where(bank_statement_lines.c.outcome == outcome)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_stored(row) for row in rows]

    async def payouts(self) -> list[PayoutTask]:
        query = (
            select(payment_events, bank_payouts_done.c.done_by, bank_payouts_done.c.done_at)
            .outerjoin(bank_payouts_done, bank_payouts_done.c.payment_id == payment_events.c.payment_id)
            .where(payment_events.c.type == PAYOUT_REQUESTED)
            .order_by(payment_events.c.created_at)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [
            PayoutTask(
                payment_id=row["payment_id"],
                amount=row["data"].get("amount", ""),
                payer_name=row["data"].get("payer_name", ""),
                payer_iban=row["data"].get("payer_iban", ""),
                bank_reference=row["data"].get("bank_reference", ""),
                requested_by=row["data"].get("decided_by", ""),
                requested_at=row["created_at"],
                done_by=row["done_by"],
                done_at=row["done_at"],
            )
            for row in rows
        ]

    async def mark_payout_done(self, payment_id: str, done_by: str) -> PayoutTask | None:
        """None when the payment has no payout task; marking one done twice keeps the first."""
        if not any(task.payment_id == payment_id for task in await self.payouts()):
            return None
        async with write_transaction(self._engine) as conn:
            insert = upsert_insert(conn, bank_payouts_done).values(
                payment_id=payment_id, done_by=done_by, done_at=datetime.now(UTC)
            )
            await conn.execute(insert.on_conflict_do_nothing())
        return next(task for task in await self.payouts() if task.payment_id == payment_id)


def _stored(r: RowMapping) -> StoredLine:
    return StoredLine(
        line=StatementLine(
            entry_reference=r["entry_reference"],
            account=r["account"],
            amount=Amount(minor=r["amount_minor"], currency=r["currency"]),
            booked_on=date.fromisoformat(r["booked_on"]),
            reference=r["reference"],
            remittance=r["remittance"],
            payer_name=r["payer_name"],
            payer_iban=r["payer_iban"],
        ),
        payment_id=r["payment_id"],
        outcome=r["outcome"],
        reason=r["reason"],
        statement=r["statement"],
        imported_at=r["imported_at"],
    )
