"""Fixed-window rate limits shared by every API instance (through `RateLimiter`, the store): per API
key on the merchant API and the codec server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from api.limits import RateLimit
from api.ports import RateLimiter
from api.problems import rate_limited


def rate_limit_middleware(
    limiter: RateLimiter | None, limit: RateLimit, key_of: Callable[[web.Request], str]
) -> Any:
    """Count each request against `key_of(request)`; 429 with Retry-After past `limit`. `limiter`
    None: no limits (benchmarks)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        if limiter is not None:
            allowed, retry_after = await limiter.hit(key_of(request), limit.window_s, limit.limit)
            if not allowed:
                raise rate_limited(
                    "rate_limited", f"At most {limit.limit} requests per {limit.window_s} s", retry_after
                )
        return await handler(request)

    return middleware
