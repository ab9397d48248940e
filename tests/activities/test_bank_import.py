"""The statement import against the store (SQLite and PostgreSQL), with the workflow's update
replaced by a recording stand-in: matching by reference, unmatched lines kept, a second import of
the same lines changing nothing, a line kept unmatched taken once its payment is recorded, payout
tasks from the recorded events."""

from __future__ import annotations

from datetime import date

from sqlalchemy.ext.asyncio import AsyncEngine

from activities.bank_import import BankImport
from activities.gateways.bank_transfer.reference import payment_reference
from activities.gateways.bank_transfer.statement import StatementLine
from activities.store.bank_statements import BankStatementStore
from activities.store.repository import PaymentStore
from tests.activities.store.helpers import engine, make_view, store
from workflows.domain import BankTransferMethod, PaymentStatus, PaymentView
from workflows.ledger_io import PaymentEventRecord, PaymentTransition
from workflows.messages import BankTransferReceipt
from workflows.money import Amount


def credit(entry: str, reference: str | None, minor: int = 4999) -> StatementLine:
    return StatementLine(
        entry_reference=entry,
        account="DE89370400440532013000",
        amount=Amount(minor=minor, currency="EUR"),
        booked_on=date(2026, 12, 6),
        reference=reference,
        payer_name="Jane Payer",
        payer_iban="GB82WEST12345698765432",
    )


async def record_payment(store: PaymentStore, payment_id: str) -> str:
    reference = payment_reference(payment_id, "DP")
    view = make_view(
        payment_id,
        gateway="bank_transfer",
        method=BankTransferMethod(),
        amount=Amount(minor=4999, currency="EUR"),
        status=PaymentStatus.AUTHORIZING,
        provider_payment_id=reference,
    )
    await store.record_transition(PaymentTransition(view=view, events=[]))
    return reference


async def test_import_matches_keeps_and_retries(
    engine: AsyncEngine, store: PaymentStore, unique: str
) -> None:
    confirmed: list[tuple[str, BankTransferReceipt]] = []

    async def confirm(payment_id: str, receipt: BankTransferReceipt) -> PaymentView:
        confirmed.append((payment_id, receipt))
        return make_view(payment_id, status=PaymentStatus.PAID)

    statements = BankStatementStore(engine)
    importer = BankImport(statements, store, confirm)
    paid_id, later_id = f"pay_a{unique}", f"pay_b{unique}"
    reference = await record_payment(store, paid_id)
    later_reference = payment_reference(later_id, "DP")  # its payment is not recorded yet
    lines = [
        credit(f"A-{unique}", reference),
        credit(f"B-{unique}", None),
        credit(f"C-{unique}", later_reference),
    ]
    first = await importer.run("stmt-1.xml", lines)
    assert [r.outcome for r in first.lines] == ["matched", "unmatched", "unmatched"]
    [(payment_id, receipt)] = confirmed
    assert payment_id == paid_id and receipt.bank_reference == f"A-{unique}"
    assert receipt.source == "statement" and receipt.confirmed_by == f"statement stmt-1.xml entry A-{unique}"

    again = await importer.run("stmt-1.xml", lines)
    assert {r.outcome for r in again.lines} == {"already_imported"} and len(confirmed) == 1

    await record_payment(store, later_id)
    third = await importer.run("stmt-2.xml", lines)
    assert [r.outcome for r in third.lines] == ["already_imported", "already_imported", "matched"]
    assert [p for p, _ in confirmed] == [paid_id, later_id]
    unmatched = [s.line.entry_reference for s in await statements.lines("unmatched")]
    assert f"B-{unique}" in unmatched and f"C-{unique}" not in unmatched


async def test_payout_tasks_come_from_the_recorded_events(
    engine: AsyncEngine, store: PaymentStore, unique: str
) -> None:
    statements = BankStatementStore(engine)
    payment_id = f"pay_p{unique}"
    event = PaymentEventRecord(
        type="bank_transfer.payout_requested",
        data={
            "amount": "60.00 EUR",
            "payer_name": "Jane",
            "payer_iban": "GB82WEST12345698765432",
            "bank_reference": "X",
            "decided_by": "ops",
        },
    )
    await store.record_transition(PaymentTransition(view=make_view(payment_id), events=[event]))
    assert await statements.mark_payout_done(f"pay_none{unique}", "alice") is None
    [task] = [t for t in await statements.payouts() if t.payment_id == payment_id]
    assert task.done_by is None and task.payer_iban == "GB82WEST12345698765432" and task.amount == "60.00 EUR"
    done = await statements.mark_payout_done(payment_id, "alice")
    assert done is not None and done.done_by == "alice"
    again = await statements.mark_payout_done(payment_id, "bob")  # the first mark stays
    assert again is not None and again.done_by == "alice"
