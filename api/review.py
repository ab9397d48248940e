"""`POST /v1/payments/{id}/review`: an operator approves or rejects a payment held for review.

Authenticated like every /v1 route; the API key's id is recorded as who decided. The same decision
can come from the Temporal UI as the workflow's `review` update. Scopes: API keys have none yet;
when they do, this handler is the one place to require the `ops` scope.
"""

from __future__ import annotations

from aiohttp import web

from api.auth import API_KEY_ID
from api.payments import (
    DEPS,
    PAYMENT_ID_PATTERN,
    _json,
    _payment_id,
    _update_problems,
    _update_token,
    idempotency_key,
    read_json,
    require_view,
)
from api.schemas import PaymentOut, ReviewPayment
from workflows.messages import ReviewDecision


async def review_payment(request: web.Request) -> web.Response:
    deps = request.config_dict[DEPS]
    key = idempotency_key(request)
    body = await read_json(request, ReviewPayment)
    payment_id = _payment_id(request)
    await require_view(deps, payment_id)
    with _update_problems(payment_id):
        view = await deps.workflows.review(
            payment_id,
            ReviewDecision(decision=body.decision, note=body.note, decided_by=request[API_KEY_ID]),
            idempotency_token=_update_token(request[API_KEY_ID], key),
        )
    return _json(PaymentOut.of(view), 200)


def routes() -> web.RouteTableDef:
    table = web.RouteTableDef()
    table.post(f"/payments/{{payment_id:{PAYMENT_ID_PATTERN}}}/review")(review_payment)
    return table
