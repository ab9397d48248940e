"""The fake bank: our account at a bank, for the demo, the conformance kit and the tests. A bank
transfer has no provider API to fake; the money's proof is the account statement, so the fake books
the payers' transfers and serves the statement (camt.053 and the CSV) that the importer then reads,
as a bank's statement download does (`GET /statement.xml`, `GET /statement.csv`)."""

from __future__ import annotations

import csv
import io
import secrets
from collections.abc import Sequence
from datetime import date
from typing import Any
from xml.etree import ElementTree

from aiohttp import web

from activities.gateways.bank_transfer.reference import iban_is_valid
from activities.gateways.bank_transfer.statement import CSV_COLUMNS, StatementLine
from activities.gateways.fake_server import FakeServer
from workflows.money import Amount

_NAMESPACE = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.{version}"


def camt053(
    lines: Sequence[StatementLine], *, account: str, statement_id: str = "STMT-1", version: str = "08"
) -> bytes:
    """A camt.053 statement holding `lines` as booked credits, one entry each, in version `08` or
    `02` (whose shapes differ: the status code, the debtor's name and the amount's place)."""
    ns = _NAMESPACE.format(version=version)
    ElementTree.register_namespace("", ns)

    def sub(
        parent: ElementTree.Element, tag: str, text: str | None = None, **attrs: str
    ) -> ElementTree.Element:
        element = ElementTree.SubElement(parent, f"{{{ns}}}{tag}", attrs)
        if text is not None:
            element.text = text
        return element

    def path(parent: ElementTree.Element, tags: str, text: str) -> None:
        for tag in tags.split("/"):
            parent = sub(parent, tag)
        parent.text = text

    doc = ElementTree.Element(f"{{{ns}}}Document")
    statement = sub(doc, "BkToCstmrStmt")
    header = sub(statement, "GrpHdr")
    sub(header, "MsgId", statement_id)
    sub(header, "CreDtTm", "2026-12-06T08:00:00")
    stmt = sub(statement, "Stmt")
    sub(stmt, "Id", statement_id)
    path(stmt, "Acct/Id/IBAN", account)
    for line in lines:
        amount = str(line.amount.to_decimal())
        entry = sub(stmt, "Ntry")
        sub(entry, "Amt", amount, Ccy=line.amount.currency)
        sub(entry, "CdtDbtInd", "CRDT")
        if version == "02":
            sub(entry, "Sts", "BOOK")
        else:
            path(entry, "Sts/Cd", "BOOK")
        path(entry, "BookgDt/Dt", line.booked_on.isoformat())
        sub(entry, "AcctSvcrRef", line.entry_reference)
        tx = sub(sub(entry, "NtryDtls"), "TxDtls")
        path(tx, "Refs/EndToEndId", "NOTPROVIDED")
        if version == "02":
            sub(sub(sub(tx, "AmtDtls"), "TxAmt"), "Amt", amount, Ccy=line.amount.currency)
        else:
            sub(tx, "Amt", amount, Ccy=line.amount.currency)
        parties = sub(tx, "RltdPties")
        if line.payer_name:
            path(parties, "Dbtr/Nm" if version == "02" else "Dbtr/Pty/Nm", line.payer_name)
        if line.payer_iban:
            path(parties, "DbtrAcct/Id/IBAN", line.payer_iban)
        remittance = sub(tx, "RmtInf")
        if line.remittance:
            sub(remittance, "Ustrd", line.remittance)
        if line.reference:
            ref_info = sub(sub(remittance, "Strd"), "CdtrRefInf")
            path(ref_info, "Tp/CdOrPrtry/Cd", "SCOR")
            sub(ref_info, "Ref", line.reference)
    return ElementTree.tostring(doc, encoding="utf-8", xml_declaration=True)


def statement_csv(lines: Sequence[StatementLine]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for line in lines:
        writer.writerow(
            [
                line.entry_reference,
                line.booked_on.isoformat(),
                str(line.amount.to_decimal()),
                line.amount.currency,
                line.reference or line.remittance,
                line.payer_name or "",
                line.payer_iban or "",
            ]
        )
    return out.getvalue()


class FakeBank(FakeServer):
    """Our account: payers' transfers are booked as credits, the statement lists them all."""

    def __init__(self, *, iban: str = "DE89370400440532013000", prefix: str = "DP") -> None:
        super().__init__()
        self.iban = iban
        self.prefix = prefix
        self.credits: list[StatementLine] = []
        # A bank's entry references are unique per account for good; fakes sharing a database in
        # one test session must not reuse each other's.
        self._entry_prefix = f"FB{secrets.token_hex(4).upper()}"
        self.app.router.add_get("/statement.xml", self._camt053)
        self.app.router.add_get("/statement.csv", self._csv)

    def gateway_section(self) -> dict[str, Any]:
        """The `[payment.bank_transfer]` section of a shop banking here."""
        return {
            "enabled": True,
            "beneficiary_name": "Durapay Demo Shop",
            "iban": self.iban,
            "bic": "COBADEFFXXX",
            "bank_name": "Fake Bank",
            "reference_prefix": self.prefix,
            "currencies": ["EUR", "JPY", "KWD"],
        }

    def transfer(
        self,
        amount: Amount,
        reference: str | None,
        *,
        payer_name: str = "Jane Payer",
        payer_iban: str = "GB82WEST12345698765432",
        remittance: str = "",
    ) -> StatementLine:
        """A payer's transfer to us, booked today. The payer's bank refuses what a bank refuses."""
        if amount.minor <= 0:
            raise ValueError("a transfer moves a positive amount")
        if not iban_is_valid(payer_iban):
            raise ValueError(f"the payer's IBAN {payer_iban} does not check out")
        line = StatementLine(
            entry_reference=f"{self._entry_prefix}{len(self.credits) + 1:06d}",
            account=self.iban,
            amount=amount,
            booked_on=date.today(),
            reference=reference,
            remittance=remittance,
            payer_name=payer_name,
            payer_iban=payer_iban,
        )
        self.credits.append(line)
        return line

    def credits_for(self, reference: str) -> list[StatementLine]:
        return [line for line in self.credits if line.reference == reference]

    def statement(self) -> bytes:
        return camt053(self.credits, account=self.iban)

    async def _camt053(self, request: web.Request) -> web.Response:
        return web.Response(body=self.statement(), content_type="application/xml")

    async def _csv(self, request: web.Request) -> web.Response:
        return web.Response(text=statement_csv(self.credits), content_type="text/csv")
