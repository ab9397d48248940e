"""Bearer API keys for the merchant API: who is calling (the key's merchant) and what it may do (its
scopes).

Every configured secret is compared, in constant time, on every request: neither the comparison nor
the loop stops early, so response timing says nothing about how close a guess was or which key
matched. A key may be configured as `sha256:<hex>`, the SHA-256 of the secret, so configuration never
has to hold it in the clear; the presented token is then hashed and the digests compared.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from aiohttp import web
from pydantic import SecretStr

from api.problems import Problem
from workflows.domain import DEFAULT_MERCHANT_ID

SHA256_PREFIX = "sha256:"
DEFAULT_MERCHANT = DEFAULT_MERCHANT_ID


class Scope(StrEnum):
    PAYMENTS_WRITE = "payments:write"  # create payments, capture, cancel, refund; customers
    PAYMENTS_READ = "payments:read"  # read payments, their events, lists, customers
    OPS = "ops"  # operator tools: the codec server (decrypted histories), reviews, reconciliation


# What a key has when `[api_key_scopes]` does not name it.
DEFAULT_SCOPES = frozenset({Scope.PAYMENTS_WRITE, Scope.PAYMENTS_READ})


@dataclass(frozen=True)
class Caller:
    """The authenticated side of a request: its key, the merchant owning the key, its scopes."""

    key_id: str
    merchant_id: str
    scopes: frozenset[str]


API_KEY_ID = web.RequestKey("api_key_id", str)
CALLER = web.RequestKey("caller", Caller)

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="durapay"'}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _matches(presented: bytes, presented_sha256: bytes, configured: str) -> bool:
    if configured.startswith(SHA256_PREFIX):
        return hmac.compare_digest(presented_sha256, configured.removeprefix(SHA256_PREFIX).lower().encode())
    return hmac.compare_digest(presented, configured.encode())


def authenticate(authorization: str | None, api_keys: Mapping[str, SecretStr]) -> str | None:
    """The id of the key whose secret (or its SHA-256) is the bearer token, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    presented = token.encode()
    presented_sha256 = hashlib.sha256(presented).hexdigest().encode()
    matched: str | None = None
    for key_id, secret in api_keys.items():
        if _matches(presented, presented_sha256, secret.get_secret_value()) and matched is None:
            matched = key_id
    return matched


def auth_middleware(
    api_keys: Mapping[str, SecretStr],
    key_merchants: Mapping[str, str] | None = None,
    key_scopes: Mapping[str, frozenset[str]] | None = None,
) -> Any:
    """401 without a valid key; else the request carries its `Caller` (merchant `default` and the
    default scopes for a key the mappings do not name)."""
    merchants = key_merchants or {}
    scopes = key_scopes or {}

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
        request[CALLER] = Caller(
            key_id=key_id,
            merchant_id=merchants.get(key_id, DEFAULT_MERCHANT),
            scopes=frozenset(scopes.get(key_id, DEFAULT_SCOPES)),
        )
        return await handler(request)

    return middleware


def insufficient_scope(scope: Scope) -> Problem:
    return Problem(
        403,
        "insufficient_scope",
        "The API key lacks a scope",
        f"This operation needs an API key with the {scope.value!r} scope ([api_key_scopes]).",
        extra={"required_scope": scope.value},
    )


def require_scope(request: web.Request, scope: Scope) -> Caller:
    caller = request[CALLER]
    if scope.value not in caller.scopes:
        raise insufficient_scope(scope)
    return caller


_REQUIRED_SCOPE = "durapay_required_scope"


def requires(scope: Scope) -> Callable[[Handler], Handler]:
    """Mark a handler as needing `scope` (checked by `scope_middleware`). A mark rather than a
    wrapper: the handler stays itself for whoever looks at the matched route (api/metrics.py)."""

    def mark(handler: Handler) -> Handler:
        setattr(handler, _REQUIRED_SCOPE, scope)
        return handler

    return mark


def required_scope(request: web.Request) -> Scope:
    """The handler's mark; unmarked, reading needs payments:read and anything else payments:write."""
    marked = getattr(request.match_info.handler, _REQUIRED_SCOPE, None)
    if marked is not None:
        return Scope(marked)
    return Scope.PAYMENTS_READ if request.method in ("GET", "HEAD") else Scope.PAYMENTS_WRITE


@web.middleware
async def scope_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """403 unless the caller's key has the scope the route needs; after `auth_middleware`."""
    require_scope(request, required_scope(request))
    return await handler(request)
