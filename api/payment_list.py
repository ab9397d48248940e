"""Finding payments: `GET /v1/payments` (the merchant's payments, filtered, newest first, in pages)
and `GET /v1/payments/{id}/events` (what happened to one), both served from the store's projection.

Pages are cursors, Stripe-style: `starting_after=<the last payment id of the previous page>`. The
answer is `{"object": "list", "data": [...], "has_more": ...}`, as every list of this API.
"""

from __future__ import annotations

from datetime import datetime

from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from api.auth import CALLER, Scope, requires
from api.payments import DEPS, PAYMENT_ID_PATTERN, card_data_problem, problem_from_validation, require_view
from api.problems import Problem
from api.responses import json_response
from api.schemas import EventList, EventOut, PaymentList, PaymentOut, contains_card_number
from workflows.domain import PaymentStatus

MAX_LIMIT = 100
DEFAULT_LIMIT = 10


class PaymentFilters(BaseModel):
    """The query string of `GET /v1/payments`; every filter given must hold."""

    model_config = ConfigDict(extra="forbid")

    status: PaymentStatus | None = None
    gateway: str | None = Field(default=None, pattern=r"^[a-z0-9_-]{1,32}$")
    order_id: str | None = Field(default=None, min_length=1, max_length=128)
    customer_id: str | None = Field(default=None, min_length=1, max_length=128)
    provider_payment_id: str | None = Field(default=None, min_length=1, max_length=255)
    created_gte: AwareDatetime | None = None
    created_lt: AwareDatetime | None = None
    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    starting_after: str | None = Field(default=None, pattern=rf"^{PAYMENT_ID_PATTERN}$")


def _filters(request: web.Request) -> PaymentFilters:
    query = request.query
    repeated = sorted({name for name in query if len(query.getall(name)) > 1})
    if repeated:
        raise Problem(400, "invalid_query", "Repeated query parameter", f"Give {repeated[0]} at most once.")
    # Text the caller chose goes on into the store's query (and a debug log of it): no card numbers.
    carded = [f"/{name}" for name, value in query.items() if contains_card_number(value)]
    if carded:
        raise card_data_problem(carded)
    try:
        return PaymentFilters.model_validate(dict(query))
    except ValidationError as exc:
        raise problem_from_validation(exc) from None


async def list_payments(request: web.Request) -> web.Response:
    deps = request.config_dict[DEPS]
    merchant_id = request[CALLER].merchant_id
    filters = _filters(request)
    after: tuple[datetime, str] | None = None
    if filters.starting_after is not None:
        after = await deps.payments.position(merchant_id, filters.starting_after)
        if after is None:  # unknown, or another merchant's: the same answer either way
            raise Problem(
                400,
                "invalid_cursor",
                "Unknown starting_after",
                f"{filters.starting_after} is not one of your payments; pass the id of the last "
                "payment of the previous page.",
            )
    views, has_more = await deps.payments.page(
        merchant_id,
        status=filters.status,
        gateway=filters.gateway,
        order_id=filters.order_id,
        customer_id=filters.customer_id,
        provider_payment_id=filters.provider_payment_id,
        created_gte=filters.created_gte,
        created_lt=filters.created_lt,
        after=after,
        limit=filters.limit,
    )
    return json_response(PaymentList(data=[PaymentOut.of(view) for view in views], has_more=has_more), 200)


async def list_events(request: web.Request) -> web.Response:
    deps = request.config_dict[DEPS]
    payment_id = request.match_info["payment_id"]
    await require_view(deps, payment_id, request[CALLER].merchant_id)  # 404 unless the caller's
    events = await deps.payments.events(payment_id)
    return json_response(
        EventList(
            data=[
                EventOut(type=e.type, version=e.version, data=dict(e.data), created_at=e.created_at)
                for e in events
            ]
        ),
        200,
    )


def routes() -> web.RouteTableDef:
    table = web.RouteTableDef()
    read = requires(Scope.PAYMENTS_READ)
    table.get("/payments", allow_head=False)(read(list_payments))
    table.get(f"/payments/{{payment_id:{PAYMENT_ID_PATTERN}}}/events", allow_head=False)(read(list_events))
    return table
