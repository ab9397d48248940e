"""`POST /v1/payments/{id}/review`: an operator approves or rejects a payment held for review.

Needs an API key with the `ops` scope, of the merchant that owns the payment (another merchant's
payment is not found); the key's id is recorded as who decided. The same decision can come from the
Temporal UI as the workflow's `review` update.
"""

from __future__ import annotations

from aiohttp import web

from api.auth import CALLER, Scope, requires
from api.payments import (
    DEPS,
    PAYMENT_ID_PATTERN,
    _payment_id,
    _update_problems,
    _update_token,
    idempotency_key,
    read_json,
    require_view,
)
from api.responses import json_response
from api.schemas import PaymentOut, ReviewPayment
from workflows.messages import ReviewDecision


async def review_payment(request: web.Request) -> web.Response:
    deps = request.config_dict[DEPS]
    key = idempotency_key(request)
    body = await read_json(request, ReviewPayment)
    payment_id = _payment_id(request)
    caller = request[CALLER]
    await require_view(deps, payment_id, caller.merchant_id)
    with _update_problems(payment_id):
        view = await deps.workflows.review(
            payment_id,
            ReviewDecision(decision=body.decision, note=body.note, decided_by=caller.key_id),
            idempotency_token=_update_token(caller.key_id, key),
        )
    return json_response(PaymentOut.of(view), 200)


def routes() -> web.RouteTableDef:
    table = web.RouteTableDef()
    table.post(f"/payments/{{payment_id:{PAYMENT_ID_PATTERN}}}/review")(requires(Scope.OPS)(review_payment))
    return table
