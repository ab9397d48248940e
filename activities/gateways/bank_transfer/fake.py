"""The fake bank: writes the statements a real bank would send, for the demo, the conformance kit
and the tests. A bank transfer has no provider API to fake; the money's proof is the account
statement, so the fake is the statement (camt.053 and the CSV) that the importer then reads."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from xml.etree import ElementTree

from activities.gateways.bank_transfer.statement import CSV_COLUMNS, StatementLine

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
