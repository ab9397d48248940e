"""`durapay bank`: the operator's tools of the manual bank transfer gateway, and the statement
import the API serves (`POST /v1/bank_transfer/statements`, through `StatementImporter`).

    durapay bank import FILE                 read a camt.053 (XML) or CSV statement, confirm its credits
    durapay bank unmatched                   the lines no payment took, with why
    durapay bank payouts                     manual payouts asked for (refunds of bank transfers)
    durapay bank payout-done PAYMENT --by WHO   record that the payout was sent
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from temporalio.client import Client

from activities.bank_import import BankImport, ImportReport
from activities.gateways.bank_transfer.statement import StatementError, parse_statement
from activities.store.bank_statements import BankStatementStore
from activities.store.repository import PaymentStore
from workers.config import DurapayConfig
from workflows.client import PaymentWorkflows


class StatementImporter:
    """Parses a statement and runs the import: the API's `BankStatementImport` port."""

    def __init__(self, statements: BankStatementStore, payments: PaymentStore, client: Client) -> None:
        workflows = PaymentWorkflows(client)
        self._import = BankImport(statements, payments, workflows.confirm_bank_transfer)

    async def run(self, name: str, content: bytes) -> ImportReport:
        return await self._import.run(name, parse_statement(content))  # StatementError: a ValueError

    async def import_statement(self, name: str, content: bytes) -> Mapping[str, Any]:
        report = await self.run(name, content)
        return {**report.model_dump(mode="json"), "counts": report.counts()}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="bank_command", required=True, metavar="ACTION")
    imported = actions.add_parser("import", help="import a camt.053 (XML) or CSV bank statement")
    imported.add_argument("file", type=Path)
    actions.add_parser("unmatched", help="list statement lines that matched no payment")
    actions.add_parser("payouts", help="list manual payouts (bank transfer refunds)")
    done = actions.add_parser("payout-done", help="record a manual payout as sent")
    done.add_argument("payment_id")
    done.add_argument("--by", required=True, help="who sent it (kept on the record)")


async def run_bank(config: DurapayConfig, args: argparse.Namespace, *, out: TextIO | None = None) -> int:
    from workers.worker import Runtime, connect

    out = out or sys.stdout
    async with await Runtime.open(config) as runtime:
        statements = BankStatementStore(runtime.engine)
        if args.bank_command == "import":
            try:
                content = args.file.read_bytes()
            except OSError as exc:
                print(f"durapay bank import: {exc}", file=sys.stderr)
                return 2
            importer = StatementImporter(statements, runtime.store, await connect(config))
            try:
                report = await importer.run(args.file.name, content)
            except StatementError as exc:
                print(f"durapay bank import: {args.file}: {exc}", file=sys.stderr)
                return 2
            for line in report.lines:
                where = f" -> {line.payment_id}" if line.payment_id else ""
                why = f" ({line.reason})" if line.reason else ""
                print(f"{line.outcome:17} {line.entry_reference} {line.amount}{where}{why}", file=out)
            print(json.dumps(report.counts(), sort_keys=True), file=out)
            return 0
        if args.bank_command == "unmatched":
            lines = await statements.lines("unmatched")
            for stored in lines:
                credit = stored.line
                print(
                    f"{credit.booked_on} {credit.entry_reference} {credit.amount} from "
                    f"{credit.payer_name or '?'} {credit.payer_iban or ''} ref {credit.reference or '-'} "
                    f"{credit.remittance!r}: {stored.reason}",
                    file=out,
                )
            print(f"{len(lines)} unmatched", file=out)
            return 0
        if args.bank_command == "payouts":
            tasks = await statements.payouts()
            for task in tasks:
                state = f"done by {task.done_by} at {task.done_at:%Y-%m-%d %H:%M}" if task.done_by else "OPEN"
                print(
                    f"{task.payment_id} {task.amount} to {task.payer_name or '?'} {task.payer_iban or '?'} "
                    f"(bank ref {task.bank_reference}, asked by {task.requested_by}): {state}",
                    file=out,
                )
            print(f"{sum(t.done_by is None for t in tasks)} open of {len(tasks)}", file=out)
            return 0
        if args.bank_command == "payout-done":
            marked = await statements.mark_payout_done(args.payment_id, args.by)
            if marked is None:
                print(f"durapay bank payout-done: {args.payment_id} has no payout task", file=sys.stderr)
                return 1
            print(f"{marked.payment_id} payout done by {marked.done_by}", file=out)
            return 0
    raise AssertionError(f"unhandled bank command {args.bank_command!r}")
