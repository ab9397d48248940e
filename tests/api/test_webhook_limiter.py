"""The webhook receiver's flood protection: token buckets in the instance's memory, per gateway and
sender, never the database limiter (which stays for the merchant API and payment attempts)."""

from __future__ import annotations

import asyncio
import math

import aiohttp

from api.limits import RateLimit
from api.token_buckets import TokenBuckets
from tests.api.fakes import CountingRateLimiter, make_deps, serve


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_a_burst_then_refills_at_the_limits_rate():
    clock = Clock()
    buckets = TokenBuckets(RateLimit(limit=3, window_s=60), clock=clock)  # one token per 20 s
    assert [buckets.take("a")[0] for _ in range(3)] == [True, True, True]
    allowed, retry_after = buckets.take("a")
    assert (allowed, retry_after) == (False, 20.0)
    assert buckets.take("b") == (True, 0.0)  # another sender has its own bucket
    clock.now += 10
    assert buckets.take("a") == (False, 10.0)  # half a token, and refusals take none
    clock.now += 10
    assert buckets.take("a") == (True, 0.0)
    clock.now += 600
    # Refilled, but never past the burst size.
    assert [buckets.take("a")[0] for _ in range(4)] == [True, True, True, False]


def test_buckets_stay_bounded_full_ones_first_then_the_least_recently_used():
    clock = Clock()
    buckets = TokenBuckets(RateLimit(limit=2, window_s=2), max_keys=2, clock=clock)  # 1 token/s
    buckets.take("old")
    clock.now += 5  # "old" is full again: the same as no bucket at all
    buckets.take("busy")
    buckets.take("busy")
    buckets.take("new")
    assert len(buckets) == 2
    assert buckets.take("busy")[0] is False  # kept: its (empty) bucket is not forgotten
    buckets.take("newer")  # nothing is full now: the least recently used ("new") goes
    assert len(buckets) == 2
    assert buckets.take("busy")[0] is False


async def test_webhooks_are_limited_in_memory_and_never_touch_the_database_limiter():
    database = CountingRateLimiter()
    deps = make_deps(rate_limiter=database, limits={"webhook_rate_limit_per_minute": 2})
    async with serve(deps) as base, aiohttp.ClientSession() as http:
        statuses, retry_after = [], None
        started = asyncio.get_running_loop().time()
        for _ in range(3):
            # Unsigned: refused with 400 once through the limiter, 429 once the bucket is empty.
            async with http.post(f"{base}/webhooks/mock", data=b"{}") as resp:
                statuses.append(resp.status)
                retry_after = resp.headers.get("Retry-After")
        elapsed = asyncio.get_running_loop().time() - started
        assert statuses == [400, 400, 429]
        # One token per 30 s, less what has refilled since the first request (nothing that shows,
        # unless this machine took a second or more over three requests).
        assert retry_after is not None and math.ceil(30 - elapsed) <= int(retry_after) <= 30
        # The bucket is per gateway: this sender's empty "mock" bucket does not refuse another path.
        async with http.post(f"{base}/webhooks/nope", data=b"{}") as resp:
            assert resp.status == 404
    assert database.hits == {}


async def test_without_rate_limiting_webhooks_are_not_limited():
    deps = make_deps(limits={"webhook_rate_limit_per_minute": 1})
    async with serve(deps) as base, aiohttp.ClientSession() as http:
        for _ in range(3):
            async with http.post(f"{base}/webhooks/mock", data=b"{}") as resp:
                assert resp.status == 400


async def _statuses(base: str, forwarded_for: list[str]) -> list[int]:
    statuses = []
    async with aiohttp.ClientSession() as http:
        for sender in forwarded_for:
            async with http.post(
                f"{base}/webhooks/mock", data=b"{}", headers={"X-Forwarded-For": sender}
            ) as resp:
                statuses.append(resp.status)
    return statuses


async def test_behind_a_trusted_proxy_each_forwarded_sender_has_its_own_bucket():
    """Issue #17 item 6: behind an ingress every request comes from the proxy's address; the
    sender is the address the trusted proxy says it forwarded for."""
    limits = {"webhook_rate_limit_per_minute": 1, "trusted_proxies": ["127.0.0.0/8"]}
    deps = make_deps(rate_limiter=CountingRateLimiter(), limits=limits)
    async with serve(deps) as base:
        # A client-supplied entry left of the proxy's own is not trusted: the rightmost untrusted wins.
        senders = ["203.0.113.7", "203.0.113.8", "198.51.100.1, 203.0.113.7"]
        assert await _statuses(base, senders) == [400, 400, 429]


async def test_forwarded_for_from_an_untrusted_peer_is_ignored():
    deps = make_deps(rate_limiter=CountingRateLimiter(), limits={"webhook_rate_limit_per_minute": 1})
    async with serve(deps) as base:
        # Made-up addresses do not buy a flood new buckets.
        assert await _statuses(base, ["203.0.113.7", "203.0.113.8"]) == [400, 429]
