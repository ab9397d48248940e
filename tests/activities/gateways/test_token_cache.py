"""The bearer-token cache providers' adapters share: one fetch for concurrent callers, a new token
shortly before the old one ends, and only the refused token dropped."""

from __future__ import annotations

import asyncio

from activities.gateways.token_cache import IssuedToken, TokenCache


class Issuer:
    def __init__(self, lifetime: float) -> None:
        self.now = 1_000.0
        self.lifetime = lifetime
        self.issued = 0

    async def fetch(self) -> IssuedToken:
        await asyncio.sleep(0.01)  # concurrent callers pile up here if the cache lets them
        self.issued += 1
        return IssuedToken(value=f"t{self.issued}", expires_at=self.now + self.lifetime)


async def test_concurrent_callers_share_one_fetch():
    issuer = Issuer(lifetime=1800)
    cache = TokenCache(issuer.fetch, refresh_margin_seconds=60, clock=lambda: issuer.now)
    assert set(await asyncio.gather(*(cache.get() for _ in range(10)))) == {"t1"}
    assert issuer.issued == 1


async def test_a_token_is_replaced_within_the_margin_of_its_expiry():
    issuer = Issuer(lifetime=1800)
    cache = TokenCache(issuer.fetch, refresh_margin_seconds=60, clock=lambda: issuer.now)
    assert await cache.get() == "t1"
    issuer.now += 1800 - 61
    assert await cache.get() == "t1"
    issuer.now += 2
    assert await cache.get() == "t2"


async def test_only_the_refused_token_is_dropped():
    issuer = Issuer(lifetime=1800)
    cache = TokenCache(issuer.fetch, clock=lambda: issuer.now)
    assert await cache.get() == "t1"
    cache.invalidate("t1")
    assert await cache.get() == "t2"
    cache.invalidate("t1")  # a late 401 for the old token: the new one stays
    assert await cache.get() == "t2"
    assert issuer.issued == 2
