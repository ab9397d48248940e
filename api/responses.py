"""The one way a handler answers with a contract: its JSON, as pydantic serializes it (Decimal
strings, ISO times), under `application/json`. Errors go through api/problems.py instead."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel


def json_response(model: BaseModel, status: int) -> web.Response:
    return web.Response(status=status, body=model.model_dump_json().encode(), content_type="application/json")
