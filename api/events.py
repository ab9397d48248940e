"""The events API: what durapay told (or will tell) the merchant, with each webhook delivery attempt.

A merchant sees only its own events (another's answer 404). Reading needs payments:read, redelivery
payments:write.

GET  /v1/events?payment_id=&type=&limit=&starting_after=   newest first, cursor pagination
GET  /v1/events/{id}                                        one event and its delivery attempts
POST /v1/events/{id}/redeliver                              send it again (same webhook-id)
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel

from api.auth import CALLER, Scope, requires
from api.payments import DEPS, PAYMENT_ID_PATTERN, idempotency_key
from api.ports import MerchantEventLog
from api.problems import Problem, field_error, validation_problem
from api.responses import json_response
from api.schemas import ListOut
from workflows.merchant_events import DeliveryAttempt, DeliveryStatus, MerchantEventType, StoredMerchantEvent

EVENT_ID_PATTERN = r"evt_[0-9a-f]{24}"
MAX_LIMIT = 100
DEFAULT_LIMIT = 10


class MerchantEventOut(BaseModel):
    id: str
    object: Literal["event"] = "event"
    type: MerchantEventType
    payment_id: str
    created_at: datetime
    data: dict[str, Any]
    delivery_status: DeliveryStatus
    attempts: list[DeliveryAttempt]

    @classmethod
    def of(cls, event: StoredMerchantEvent) -> MerchantEventOut:
        return cls(
            id=event.id,
            type=event.type,
            payment_id=event.payment_id,
            created_at=event.created_at,
            data=event.data,
            delivery_status=event.delivery_status,
            attempts=event.attempts,
        )


class MerchantEventList(ListOut):
    data: list[MerchantEventOut]


def _log(request: web.Request) -> MerchantEventLog:
    events = request.config_dict[DEPS].events
    if events is None:
        raise Problem(404, "not_found", "Not found", "This deployment keeps no merchant events.")
    return events


def _query(request: web.Request) -> dict[str, Any]:
    query = request.query
    errors = []
    unknown = set(query) - {"payment_id", "type", "limit", "starting_after"}
    errors += [field_error(f"/{name}", "unknown query parameter") for name in sorted(unknown)]
    payment_id = query.get("payment_id")
    if payment_id is not None and not re.fullmatch(PAYMENT_ID_PATTERN, payment_id):
        errors.append(field_error("/payment_id", "not a payment id"))
    type_ = query.get("type")
    if type_ is not None and type_ not in set(MerchantEventType):
        errors.append(field_error("/type", "one of " + ", ".join(t.value for t in MerchantEventType)))
    starting_after = query.get("starting_after")
    if starting_after is not None and not re.fullmatch(EVENT_ID_PATTERN, starting_after):
        errors.append(field_error("/starting_after", "not an event id"))
    limit = DEFAULT_LIMIT
    raw_limit = query.get("limit")
    if raw_limit is not None:
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIMIT:
            errors.append(field_error("/limit", f"an integer from 1 to {MAX_LIMIT}"))
        else:
            limit = int(raw_limit)
    if errors:
        raise validation_problem(errors)
    return {"payment_id": payment_id, "type": type_, "limit": limit, "starting_after": starting_after}


def _not_found(event_id: str) -> Problem:
    return Problem(404, "event_not_found", "Event not found", f"No event {event_id}.")


async def list_events(request: web.Request) -> web.Response:
    page, more = await _log(request).list(request[CALLER].merchant_id, **_query(request))
    return json_response(MerchantEventList(data=[MerchantEventOut.of(e) for e in page], has_more=more), 200)


async def get_event(request: web.Request) -> web.Response:
    event_id = request.match_info["event_id"]
    event = await _log(request).get(request[CALLER].merchant_id, event_id)
    if event is None:
        raise _not_found(event_id)
    return json_response(MerchantEventOut.of(event), 200)


async def redeliver_event(request: web.Request) -> web.Response:
    idempotency_key(request)  # required on every POST; queueing the same event twice is harmless
    event_id = request.match_info["event_id"]
    event = await _log(request).redeliver(request[CALLER].merchant_id, event_id)
    if event is None:
        raise _not_found(event_id)
    return json_response(MerchantEventOut.of(event), 202)


def routes() -> web.RouteTableDef:
    table = web.RouteTableDef()
    write, read = requires(Scope.PAYMENTS_WRITE), requires(Scope.PAYMENTS_READ)
    table.get("/events", allow_head=False)(read(list_events))
    table.get(f"/events/{{event_id:{EVENT_ID_PATTERN}}}", allow_head=False)(read(get_event))
    table.post(f"/events/{{event_id:{EVENT_ID_PATTERN}}}/redeliver")(write(redeliver_event))
    return table
