from __future__ import annotations

from datetime import date

import pytest

from activities.gateways.bank_transfer.fake import camt053, statement_csv
from activities.gateways.bank_transfer.reference import payment_reference, printed
from activities.gateways.bank_transfer.statement import (
    StatementError,
    StatementLine,
    parse_camt053,
    parse_statement,
)
from workflows.money import Amount

OURS = "DE89370400440532013000"
REF = payment_reference("pay_abc", "DP")


def line(entry: str = "BANKREF1", minor: int = 4999, reference: str | None = REF, **kw: str) -> StatementLine:
    return StatementLine(
        entry_reference=entry,
        account=OURS,
        amount=Amount(minor=minor, currency="EUR"),
        booked_on=date(2026, 12, 6),
        reference=reference,
        payer_name="Jane Payer",
        payer_iban="GB82WEST12345698765432",
        **kw,
    )


@pytest.mark.parametrize("version", ["08", "02"])
def test_camt053_round_trip_in_both_versions(version: str) -> None:
    lines = [line(), line("BANKREF2", 100, None, remittance="no idea")]
    assert parse_statement(camt053(lines, account=OURS, version=version)) == lines


def test_reference_found_in_wrapped_unstructured_text() -> None:
    [parsed] = parse_camt053(
        camt053([line(reference=None, remittance=f"order 17 {printed(REF)} thanks")], account=OURS)
    )
    assert parsed.reference == REF


def test_a_structured_reference_with_bad_check_digits_is_not_trusted() -> None:
    bad = REF[:2] + ("00" if REF[2:4] != "00" else "01") + REF[4:]
    [parsed] = parse_camt053(camt053([line(reference=bad)], account=OURS))
    assert parsed.reference is None


def _entry(indicator: str = "CRDT", status: str = "<Sts><Cd>BOOK</Cd></Sts>", extra: str = "") -> str:
    return (
        f'<Ntry><Amt Ccy="EUR">10.00</Amt><CdtDbtInd>{indicator}</CdtDbtInd>{extra}{status}'
        "<BookgDt><Dt>2026-12-06</Dt></BookgDt><AcctSvcrRef>E1</AcctSvcrRef></Ntry>"
    )


def _doc(*entries: str) -> bytes:
    return (
        '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt><Stmt>'
        f"<Acct><Id><IBAN>{OURS}</IBAN></Id></Acct>{''.join(entries)}</Stmt></BkToCstmrStmt></Document>"
    ).encode()


def test_only_booked_credits_that_are_not_reversals_are_read() -> None:
    assert len(parse_camt053(_doc(_entry()))) == 1
    assert parse_camt053(_doc(_entry("DBIT"))) == []
    assert parse_camt053(_doc(_entry(status="<Sts><Cd>PDNG</Cd></Sts>"))) == []
    assert parse_camt053(_doc(_entry(extra="<RvslInd>true</RvslInd>"))) == []


def test_a_batch_entry_is_split_into_its_transactions() -> None:
    tx = (
        '<TxDtls><Amt Ccy="EUR">{amount}</Amt><RmtInf><Strd><CdtrRefInf><Ref>{ref}</Ref>'
        "</CdtrRefInf></Strd></RmtInf></TxDtls>"
    )
    other = payment_reference("pay_other", "DP")
    details = (
        "<NtryDtls>" + tx.format(amount="6.00", ref=REF) + tx.format(amount="4.00", ref=other) + "</NtryDtls>"
    )
    entry = _entry().replace("</Ntry>", details + "</Ntry>")
    first, second = parse_camt053(_doc(entry))
    assert (first.entry_reference, first.amount.minor, first.reference) == ("E1/1", 600, REF)
    assert (second.entry_reference, second.amount.minor, second.reference) == ("E1/2", 400, other)


@pytest.mark.parametrize(
    "content",
    [
        b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><Document>&x;</Document>',
        b'<!DOCTYPE d [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><Document>&b;</Document>',
        b"<Document xmlns='urn:other'/>",
        b"<Document",
    ],
)
def test_unsafe_or_foreign_xml_is_refused(content: bytes) -> None:
    with pytest.raises(StatementError):
        parse_statement(content)


def test_csv_round_trip_skips_debits_and_checks_its_header() -> None:
    lines = [line(), line("BANKREF2", 100, None)]
    text = statement_csv(lines) + "BANKREF3,2026-12-06,-5.00,EUR,,,\n"
    parsed = parse_statement(text.encode())
    assert [p.entry_reference for p in parsed] == ["BANKREF1", "BANKREF2"]
    assert parsed[0].amount == Amount(minor=4999, currency="EUR") and parsed[0].reference == REF
    with pytest.raises(StatementError, match="header"):
        parse_statement(b"a,b\n1,2\n")
    with pytest.raises(StatementError, match="amount"):
        parse_statement((statement_csv([]) + "X,2026-12-06,12.345,EUR,,,\n").encode())
