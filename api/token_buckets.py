"""Token buckets in one process's memory: the webhook flood limiter (api/app.py) and the sample of
rejected webhooks (api/rejection_sample.py)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from api.limits import RateLimit


class TokenBuckets:
    """Per-key token buckets in this process's memory: `limit.limit` requests at once, refilled at
    `limit.limit` per `limit.window_s`.

    For flood protection, where a count shared between instances buys nothing: each instance
    protects itself, and a database write per request would be the very load a flood should not
    cause. At most `max_keys` buckets are kept; a full bucket is the same as no bucket, so those
    go first, then the least recently used (whose sender starts over with a full bucket)."""

    def __init__(
        self, limit: RateLimit, *, max_keys: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._capacity = float(limit.limit)
        self._per_second = limit.limit / limit.window_s
        self._max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str) -> tuple[bool, float]:
        """Take one token for `key`; (allowed, seconds until a token is there when refused)."""
        now = self._clock()
        tokens = self._tokens(key, now)
        if tokens >= 1:
            self._buckets[key] = (tokens - 1, now)
            self._buckets.move_to_end(key)
            self._evict()
            return True, 0.0
        self._buckets[key] = (tokens, now)
        self._buckets.move_to_end(key)
        return False, (1 - tokens) / self._per_second if self._per_second else float("inf")

    def _tokens(self, key: str, now: float) -> float:
        held = self._buckets.get(key)
        if held is None:
            return self._capacity
        tokens, at = held
        return min(self._capacity, tokens + (now - at) * self._per_second)

    def _evict(self) -> None:
        if len(self._buckets) <= self._max_keys:
            return
        now = self._clock()
        for key in [k for k in self._buckets if self._tokens(k, now) >= self._capacity]:
            del self._buckets[key]
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
