"""Operator routes of the manual bank transfer gateway (scope `ops`): confirm money received for a
payment, resolve a payment held for review (accept, or refund by a manual payout), and import a bank
statement. The first two are validated workflow updates that record who vouches (the operator's API
key id); the import confirms each matched credit the same way, naming the statement entry. Nothing
here marks a payment paid by itself.
"""

from __future__ import annotations

import json
from typing import Literal

from aiohttp import web
from pydantic import AwareDatetime, Field

from api.auth import API_KEY_ID, CALLER, Scope, requires
from api.payments import (
    DEPS,
    PAYMENT_ID_PATTERN,
    _minor_of,
    _update_problems,
    _update_token,
    idempotency_key,
    read_json,
    require_view,
)
from api.problems import Problem
from api.responses import json_response
from api.schemas import DecimalString, PaymentOut, Request
from workflows.messages import BankTransferReceipt, BankTransferResolution
from workflows.money import Amount

# A statement of a few thousand lines; bigger ones go through `durapay bank import`.
MAX_STATEMENT_BYTES = 5 * 1024 * 1024


class ConfirmBankTransfer(Request):
    amount: DecimalString  # in the payment's currency
    bank_reference: str = Field(min_length=1, max_length=140)
    received_at: AwareDatetime
    payer_name: str | None = Field(default=None, max_length=140)
    payer_iban: str | None = Field(default=None, max_length=34)


class ResolveBankTransfer(Request):
    decision: Literal["accept", "refund"]


class ImportStatement(Request):
    name: str = Field(min_length=1, max_length=255)
    content: str = Field(min_length=1, max_length=MAX_STATEMENT_BYTES)


async def confirm_bank_transfer(request: web.Request) -> web.Response:
    deps = request.config_dict[DEPS]
    idempotency_key(request)  # required on every POST; the bank reference makes the update idempotent
    body = await read_json(request, ConfirmBankTransfer)
    payment_id = request.match_info["payment_id"]
    view = await require_view(deps, payment_id, request[CALLER].merchant_id)
    receipt = BankTransferReceipt(
        amount=Amount(minor=_minor_of(body.amount, view.amount.currency), currency=view.amount.currency),
        bank_reference=body.bank_reference,
        received_at=body.received_at,
        source="operator",
        confirmed_by=f"api key {request[API_KEY_ID]}",
        payer_name=body.payer_name,
        payer_iban=body.payer_iban,
    )
    with _update_problems(payment_id):
        view = await deps.workflows.confirm_bank_transfer(payment_id, receipt)
    return json_response(PaymentOut.of(view), 200)


async def resolve_bank_transfer(request: web.Request) -> web.Response:
    deps = request.config_dict[DEPS]
    key = idempotency_key(request)
    body = await read_json(request, ResolveBankTransfer)
    payment_id = request.match_info["payment_id"]
    await require_view(deps, payment_id, request[CALLER].merchant_id)
    with _update_problems(payment_id):
        view = await deps.workflows.resolve_bank_transfer(
            payment_id,
            BankTransferResolution(decision=body.decision, decided_by=f"api key {request[API_KEY_ID]}"),
            idempotency_token=_update_token(request[API_KEY_ID], key),
        )
    return json_response(PaymentOut.of(view), 200)


async def import_statement(request: web.Request) -> web.Response:
    deps = request.config_dict[DEPS]
    idempotency_key(request)  # required on every POST; entries already imported are skipped anyway
    if deps.bank_statements is None:
        raise Problem(404, "not_found", "Not found", "No bank statement import is configured.")
    body = await read_json(request, ImportStatement)
    try:
        report = await deps.bank_statements.import_statement(body.name, body.content.encode())
    except ValueError as exc:  # StatementError: the file is not a statement this importer reads
        raise Problem(422, "invalid_statement", "The statement cannot be read", str(exc)) from None
    return web.Response(status=200, body=json.dumps(report).encode(), content_type="application/json")


def routes() -> web.RouteTableDef:
    table = web.RouteTableDef()
    ops = requires(Scope.OPS)
    one = f"/payments/{{payment_id:{PAYMENT_ID_PATTERN}}}"
    table.post(f"{one}/bank_transfer/confirm")(ops(confirm_bank_transfer))
    table.post(f"{one}/bank_transfer/resolve")(ops(resolve_bank_transfer))
    table.post("/bank_transfer/statements")(ops(import_statement))
    return table
