"""Bearer API keys for the merchant API.

Every configured secret is compared, in constant time, on every request: neither the comparison nor
the loop stops early, so response timing says nothing about how close a guess was or which key
matched.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from pydantic import SecretStr

from api.problems import Problem

API_KEY_ID = web.RequestKey("api_key_id", str)

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="durapay"'}


def authenticate(authorization: str | None, api_keys: Mapping[str, SecretStr]) -> str | None:
    """The id of the key whose secret is the bearer token, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    presented = token.encode()
    matched: str | None = None
    for key_id, secret in api_keys.items():
        if hmac.compare_digest(presented, secret.get_secret_value().encode()) and matched is None:
            matched = key_id
    return matched


def auth_middleware(api_keys: Mapping[str, SecretStr]) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        key_id = authenticate(request.headers.get("Authorization"), api_keys)
        if key_id is None:
            raise Problem(
                401,
                "unauthorized",
                "Authentication required",
                "Send a valid API key as 'Authorization: Bearer <key>'.",
                headers=_CHALLENGE,
            )
        request[API_KEY_ID] = key_id
        return await handler(request)

    return middleware
