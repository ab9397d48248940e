"""Importing a bank statement: each booked credit is matched to the bank transfer payment whose RF
reference it carries and confirmed to that payment's workflow (update `confirm_bank_transfer`,
saying which statement entry vouches for it); the workflow decides paid (the exact amount) or held
for review (any other amount, or too late). A line that matches no payment, or that its payment
refuses, is stored as unmatched with the reason and listed for an operator - never dropped.

Importing the same statement again changes nothing: a line already matched is skipped, and a
confirmation repeated after a crash between the update and the store write is the same update
(one update id per bank entry) and the same receipt (taken once by the workflow). A line that no
payment's reference matched is tried again by every import that holds it, until one does."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, time
from typing import Literal

from pydantic import BaseModel, ConfigDict
from temporalio.client import WorkflowUpdateFailedError

from activities.gateways.bank_transfer import GATEWAY_ID
from activities.gateways.bank_transfer.statement import StatementLine
from activities.store.bank_statements import BankStatementStore, LineOutcome
from activities.store.repository import PaymentStore
from workflows.client import PaymentNotRunning
from workflows.domain import PaymentStatus, PaymentView
from workflows.messages import BankTransferReceipt

Confirm = Callable[[str, BankTransferReceipt], Awaitable[PaymentView]]


class LineResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    entry_reference: str
    amount: str
    reference: str | None
    payment_id: str | None
    # `already_imported`: stored by an earlier import, left as it was.
    outcome: LineOutcome | Literal["already_imported"]
    reason: str | None = None


class ImportReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    statement: str
    lines: list[LineResult]

    def counts(self) -> dict[str, int]:
        return dict(Counter(line.outcome for line in self.lines))


class BankImport:
    def __init__(self, statements: BankStatementStore, payments: PaymentStore, confirm: Confirm) -> None:
        self._statements = statements
        self._payments = payments
        self._confirm = confirm

    async def run(self, statement: str, lines: Sequence[StatementLine]) -> ImportReport:
        """`statement`: the file's name, kept with each line and in each receipt's `confirmed_by`."""
        return ImportReport(statement=statement, lines=[await self._line(statement, line) for line in lines])

    async def _line(self, statement: str, line: StatementLine) -> LineResult:
        known = await self._statements.known(line)
        if known is not None and known.payment_id is not None:
            return _result(line, known.payment_id, "already_imported", known.reason)
        # New, or kept unmatched because no payment had its reference then (statements overlap: the
        # next one may find the payment, e.g. one whose record was still being written).
        payment_id, outcome, reason = await self._match(statement, line)
        if known is None:
            await self._statements.record(
                line, payment_id=payment_id, outcome=outcome, reason=reason, statement=statement
            )
        elif payment_id is None:
            return _result(line, None, "already_imported", known.reason)
        else:
            await self._statements.rematch(line, payment_id=payment_id, outcome=outcome, reason=reason)
        return _result(line, payment_id, outcome, reason)

    async def _match(self, statement: str, line: StatementLine) -> tuple[str | None, LineOutcome, str | None]:
        if line.reference is None:
            return None, "unmatched", "no valid RF reference on the line"
        payment_id = await self._payments.payment_id_for_provider_ref(GATEWAY_ID, line.reference)
        if payment_id is None:
            return None, "unmatched", f"no bank transfer payment has reference {line.reference}"
        receipt = BankTransferReceipt(
            amount=line.amount,
            bank_reference=line.entry_reference,
            received_at=datetime.combine(line.booked_on, time(), tzinfo=UTC),
            source="statement",
            confirmed_by=f"statement {statement} entry {line.entry_reference}"[:200],
            payer_name=line.payer_name,
            payer_iban=line.payer_iban,
        )
        try:
            view = await self._confirm(payment_id, receipt)
        except WorkflowUpdateFailedError as exc:
            cause = exc.cause
            return payment_id, "unmatched", f"the payment refused it: {getattr(cause, 'message', cause)}"
        except PaymentNotRunning:
            return payment_id, "unmatched", "the payment is closed (past its settlement window)"
        if view.status is PaymentStatus.REQUIRES_REVIEW:
            return payment_id, "held_for_review", view.failure.message if view.failure else None
        return payment_id, "matched", None


def _result(
    line: StatementLine,
    payment_id: str | None,
    outcome: LineOutcome | Literal["already_imported"],
    reason: str | None,
) -> LineResult:
    return LineResult(
        entry_reference=line.entry_reference,
        amount=str(line.amount),
        reference=line.reference,
        payment_id=payment_id,
        outcome=outcome,
        reason=reason,
    )
