"""Fixtures every end-to-end suite shares; each suite module provides its own `stack` and `fake`."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest_asyncio

from tests.stack import Stack


@pytest_asyncio.fixture
async def http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    """A client for the merchant API of the module's stack."""
    async with stack.http() as client:
        yield client
