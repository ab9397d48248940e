"""A bearer token that an adapter obtains from its provider (a login, an OAuth2 client-credentials
grant) and reuses until shortly before it expires, shared by every concurrent activity of the
adapter. Provider-neutral: the adapter supplies the call that fetches a token and its lifetime.

Concurrent callers that find no usable token wait for one fetch instead of each logging in
(providers rate-limit their token endpoints). A token the provider refused (401) is dropped with
`invalidate(token)`: only that token, so that when many calls see the same 401 at once the first
refresh is reused by the others rather than repeated.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class IssuedToken:
    value: str
    expires_at: float  # wall-clock seconds since the epoch, as the provider states it


class TokenCache:
    def __init__(
        self,
        fetch: Callable[[], Awaitable[IssuedToken]],
        *,
        refresh_margin_seconds: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._fetch = fetch
        self._margin = refresh_margin_seconds
        self._clock = clock
        self._token: IssuedToken | None = None
        self._lock = asyncio.Lock()

    def _usable(self) -> IssuedToken | None:
        token = self._token
        if token is not None and self._clock() < token.expires_at - self._margin:
            return token
        return None

    async def get(self) -> str:
        token = self._usable()
        if token is not None:
            return token.value
        async with self._lock:
            # Another caller may have fetched while this one waited for the lock.
            token = self._usable()
            if token is None:
                token = await self._fetch()
                self._token = token
            return token.value

    def invalidate(self, value: str) -> None:
        """The provider refused `value`: the next `get` fetches a new token, unless one already has."""
        if self._token is not None and self._token.value == value:
            self._token = None
