"""Bank statements: the credit lines of an ISO 20022 camt.053 statement (XML) or of a simple CSV,
read into `StatementLine`s. Pure parsing; matching lines to payments is `workers/bank_import.py`'s.

Only booked credits are payments to us: debits, pending (`PDNG`) or informational entries and
reversals are skipped. Every line has a stable `entry_reference` (the bank's own reference for the
entry, plus the position inside a batch booking), so importing a file twice finds the same lines.

camt.053 namespaces differ per version (.001.02, .001.08, ...): elements are matched by local name
within the document's own namespace. A document type declaration is refused before parsing: a
statement never needs one, and refusing it rules out entity expansion (external or "billion
laughs") without a parser dependency.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from xml.etree import ElementTree

from pydantic import BaseModel, ConfigDict

from activities.gateways.bank_transfer.reference import find_reference, is_valid
from workflows.money import Amount, MoneyError

_CAMT053 = re.compile(r"^\{urn:iso:std:iso:20022:tech:xsd:camt\.053\.001\.\d{2}\}Document$")
CSV_COLUMNS = ("entry_reference", "booked_on", "amount", "currency", "reference", "payer_name", "payer_iban")


class StatementError(ValueError):
    """The file is not a statement this importer reads; nothing was imported."""


class StatementLine(BaseModel):
    """One credit to our account."""

    model_config = ConfigDict(frozen=True)

    entry_reference: str  # unique per account: the bank's entry reference (+ batch position)
    account: str  # our account (IBAN) the statement is for; "" when the file does not say
    amount: Amount
    booked_on: date
    reference: str | None  # a valid RF creditor reference, when the payer gave one
    remittance: str = ""  # the payer's free text, for an operator reading an unmatched line
    payer_name: str | None = None
    payer_iban: str | None = None


def parse_statement(content: bytes) -> list[StatementLine]:
    """camt.053 when the file is XML, else the CSV format (`CSV_COLUMNS` as its header)."""
    if content.lstrip().startswith(b"<"):
        return parse_camt053(content)
    return parse_csv(content.decode("utf-8-sig"))


# ---------------------------------------------------------------- camt.053


def parse_camt053(content: bytes) -> list[StatementLine]:
    if b"<!DOCTYPE" in content.upper() or b"<!ENTITY" in content.upper():
        raise StatementError("a statement with a document type declaration is refused")
    try:
        root = ElementTree.fromstring(content)
    except ElementTree.ParseError as exc:
        raise StatementError(f"not well-formed XML: {exc}") from None
    match = _CAMT053.match(root.tag)
    if not match:
        raise StatementError(f"not a camt.053 document (root {root.tag})")
    ns = root.tag[1 : root.tag.index("}")]
    x = _Finder(ns)
    lines: list[StatementLine] = []
    for stmt in x.all(root, "BkToCstmrStmt/Stmt"):
        account = x.text(stmt, "Acct/Id/IBAN") or x.text(stmt, "Acct/Id/Othr/Id") or ""
        for entry in x.all(stmt, "Ntry"):
            lines.extend(_entry_lines(x, account, entry))
    return lines


class _Finder:
    """ElementTree paths written without the namespace."""

    def __init__(self, ns: str) -> None:
        self._ns = ns

    def _path(self, path: str) -> str:
        return "/".join(f"{{{self._ns}}}{part}" for part in path.split("/"))

    def all(self, element: ElementTree.Element, path: str) -> list[ElementTree.Element]:
        return element.findall(self._path(path))

    def one(self, element: ElementTree.Element, path: str) -> ElementTree.Element | None:
        return element.find(self._path(path))

    def text(self, element: ElementTree.Element, path: str) -> str | None:
        found = self.one(element, path)
        text = (found.text or "").strip() if found is not None else ""
        return text or None


def _entry_lines(x: _Finder, account: str, entry: ElementTree.Element) -> list[StatementLine]:
    status = x.text(entry, "Sts/Cd") or x.text(entry, "Sts")  # .08 has <Cd>, .02 the bare code
    if (
        x.text(entry, "CdtDbtInd") != "CRDT"
        or status != "BOOK"
        or (x.text(entry, "RvslInd") or "false").lower() == "true"
    ):
        return []
    booked = x.text(entry, "BookgDt/Dt") or (x.text(entry, "BookgDt/DtTm") or "")[:10]
    try:
        booked_on = date.fromisoformat(booked)
    except ValueError:
        raise StatementError(f"an entry without a booking date: {booked!r}") from None
    entry_amount = _amount(x, entry, "Amt")
    details = x.all(entry, "NtryDtls/TxDtls") or [entry]
    entry_ref = x.text(entry, "AcctSvcrRef") or x.text(entry, "NtryRef")
    lines = []
    for index, tx in enumerate(details):
        amount = entry_amount
        if tx is not entry and len(details) > 1:
            amount = (
                _amount(x, tx, "Amt") if x.one(tx, "Amt") is not None else _amount(x, tx, "AmtDtls/TxAmt/Amt")
            )
        unstructured = [el.text or "" for el in x.all(tx, "RmtInf/Ustrd")]
        structured = x.text(tx, "RmtInf/Strd/CdtrRefInf/Ref")
        end_to_end = x.text(tx, "Refs/EndToEndId")
        reference = (
            structured.replace(" ", "").upper()
            if structured and is_valid(structured)
            else find_reference(*unstructured) or find_reference(end_to_end or "")
        )
        if entry_ref:
            line_ref = entry_ref if len(details) == 1 else f"{entry_ref}/{index + 1}"
        else:
            # No bank reference: a digest of what identifies the line, stable across re-imports.
            seed = "|".join([account, booked, str(amount), end_to_end or "", *unstructured, str(index)])
            line_ref = "sha256:" + hashlib.sha256(seed.encode()).hexdigest()[:24]
        lines.append(
            StatementLine(
                entry_reference=line_ref,
                account=account,
                amount=amount,
                booked_on=booked_on,
                reference=reference,
                remittance=" ".join(t.strip() for t in unstructured if t.strip()),
                payer_name=x.text(tx, "RltdPties/Dbtr/Pty/Nm") or x.text(tx, "RltdPties/Dbtr/Nm"),
                payer_iban=x.text(tx, "RltdPties/DbtrAcct/Id/IBAN"),
            )
        )
    return lines


def _amount(x: _Finder, element: ElementTree.Element, path: str) -> Amount:
    found = x.one(element, path)
    if found is None or not found.text or not found.get("Ccy"):
        raise StatementError(f"an entry without {path} and its currency")
    return _parse_amount(found.text.strip(), found.get("Ccy", ""))


def _parse_amount(text: str, currency: str) -> Amount:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise StatementError(f"not an amount: {text!r}") from None
    try:
        return Amount.of(value, currency)
    except (MoneyError, ValueError) as exc:
        raise StatementError(f"bad amount {text} {currency}: {exc}") from None


# ---------------------------------------------------------------- CSV


def parse_csv(text: str) -> list[StatementLine]:
    """A header with `CSV_COLUMNS` (`payer_name`, `payer_iban`, `reference` may be empty; extra
    columns are ignored); amounts as decimal strings, credits positive. Debits are skipped."""
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise StatementError(f"the CSV header lacks {', '.join(missing)}")
    lines = []
    for row in reader:
        amount = _parse_amount(row["amount"].strip(), row["currency"].strip())
        if amount.minor <= 0:
            continue
        try:
            booked_on = datetime.fromisoformat(row["booked_on"].strip()).date()
        except ValueError:
            raise StatementError(f"line {reader.line_num}: not a date: {row['booked_on']!r}") from None
        if not row["entry_reference"].strip():
            raise StatementError(f"line {reader.line_num}: no entry_reference")
        given = row["reference"].strip()
        lines.append(
            StatementLine(
                entry_reference=row["entry_reference"].strip(),
                account=row.get("account", "").strip(),
                amount=amount,
                booked_on=booked_on,
                reference=find_reference(given) if given else None,
                remittance=given,
                payer_name=row["payer_name"].strip() or None,
                payer_iban=row["payer_iban"].replace(" ", "").strip() or None,
            )
        )
    return lines
