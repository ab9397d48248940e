"""The one HTTP transport REST provider adapters (WeChat Pay, AliPay; later Airwallex, PayPal) share.

It owns the connection pool and timeouts, and turns every way an HTTP call can go wrong into the
`activities.gateways.base` errors exactly once, so that no adapter re-decides what a dropped
connection means for money:

- the request never left (connect refused / timed out, no pooled connection): `GatewayTransientError`,
  safe to retry;
- the request may have reached the provider but no usable answer came back (read timeout, connection
  dropped after the request was written, 500 / 502 / 504): `GatewayOutcomeUnknown`, retried with the
  same idempotency key and resolved by a lookup if retries run out;
- 503 (the provider shed the request before working on it): `GatewayTransientError`;
- 429: `GatewayRateLimited` with the provider's `Retry-After`;
- any other answer, 4xx included, goes back to the adapter: only it can read the provider's error
  body. `raise_rejection` then turns it into the final error.

Messages name the provider, the method and the URL path, never the query string, headers or bodies:
those carry signatures, account ids and sometimes customer data.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, NoReturn

import httpx
from pydantic import BaseModel, ConfigDict, Field

from activities.gateways.base import (
    GatewayConfigError,
    GatewayInvalidRequest,
    GatewayOutcomeUnknown,
    GatewayRateLimited,
    GatewayTransientError,
)

logger = logging.getLogger(__name__)

# Provider error messages end up in Temporal histories and operator logs: keep them short.
MAX_PROVIDER_MESSAGE = 200

# 5xx answers after which the provider may well have acted on the request. 503 is the conventional
# "overloaded, did not start" answer; every other 5xx (500 from a crash half-way through, 502 / 504
# from a proxy whose upstream kept going) leaves the outcome open.
_SHED_BEFORE_PROCESSING = frozenset({503})

_DELTA_SECONDS = re.compile(r"^\d+(\.\d+)?$")
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f]+")


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def secure_base_url(value: str, name: str) -> str:
    """`value`, a provider's base URL, if it is https: requests carry our credentials, signatures
    and the customer's data. Plain http only to a loopback host (a fake provider in tests)."""
    url = httpx.URL(value)
    if url.scheme == "https" or (url.scheme == "http" and url.host in LOOPBACK_HOSTS):
        return value
    raise ValueError(f"{name} must be https:// (plain http only to a loopback test server)")


class HttpSettings(BaseModel):
    """Pool and timeout knobs; embed it in a provider's settings model as `http: HttpSettings`."""

    model_config = ConfigDict(extra="forbid")

    connect_timeout_seconds: float = Field(default=3.0, gt=0)
    # Read / write / waiting for a pooled connection. Providers answer payment calls in a few
    # seconds; beyond this the activity retries with the same idempotency key.
    timeout_seconds: float = Field(default=15.0, gt=0)
    max_connections: int = Field(default=20, gt=0)
    max_keepalive_connections: int = Field(default=10, ge=0)
    keepalive_expiry_seconds: float = Field(default=30.0, ge=0)


class HttpTransport:
    """An `httpx.AsyncClient` for one provider host, shared by every concurrent activity."""

    def __init__(
        self,
        provider: str,
        base_url: str,
        settings: HttpSettings | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        settings = settings or HttpSettings()
        self.provider = provider
        self._client = httpx.AsyncClient(
            base_url=base_url,
            headers=dict(headers or {}),
            timeout=httpx.Timeout(settings.timeout_seconds, connect=settings.connect_timeout_seconds),
            limits=httpx.Limits(
                max_connections=settings.max_connections,
                max_keepalive_connections=settings.max_keepalive_connections,
                keepalive_expiry=settings.keepalive_expiry_seconds,
            ),
            # A redirect from a payment API is a misconfiguration (wrong host), not something to
            # follow with a signed request.
            follow_redirects=False,
        )

    def build_request(self, method: str, url: str, **kwargs: Any) -> httpx.Request:
        """`httpx.AsyncClient.build_request` against the base URL, so an adapter can sign the exact
        path and body bytes (`request.url.raw_path`, `request.content`) before `send`."""
        return self._client.build_request(method, url, **kwargs)

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return await self.send(self.build_request(method, url, **kwargs))

    async def send(self, request: httpx.Request) -> httpx.Response:
        """Send and read the whole response; raise the gateway error that describes a failure."""
        where = f"{self.provider} {request.method} {request.url.path}"
        started = time.monotonic()
        try:
            response = await self._client.send(request)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise GatewayTransientError(
                f"{where}: request not sent ({_describe(exc)})", code="gateway_unreachable"
            ) from exc
        except httpx.UnsupportedProtocol as exc:
            raise GatewayConfigError(f"{where}: unsupported URL scheme in the base URL") from exc
        except httpx.LocalProtocolError as exc:
            raise GatewayInvalidRequest(f"{where}: request could not be encoded ({_describe(exc)})") from exc
        except (httpx.TransportError, httpx.DecodingError) as exc:
            # Read / write timeouts, resets and truncated or undecodable answers: the bytes of the
            # request may all have arrived, so the provider may have acted on them.
            raise GatewayOutcomeUnknown(f"{where}: no usable response ({_describe(exc)})") from exc
        status = response.status_code
        logger.debug("%s -> %s in %.0f ms", where, status, (time.monotonic() - started) * 1000)
        if status == 429:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            raise GatewayRateLimited(f"{where}: rate limited (429)", retry_after=retry_after)
        if status in _SHED_BEFORE_PROCESSING:
            raise GatewayTransientError(f"{where}: provider unavailable ({status})")
        if status >= 500:
            raise GatewayOutcomeUnknown(f"{where}: provider error ({status})")
        return response

    async def aclose(self) -> None:
        await self._client.aclose()


def raise_rejection(
    response: httpx.Response, *, code: str | None = None, message: str | None = None
) -> NoReturn:
    """The provider refused the request (a 4xx other than 429): final, never retried.

    `code` / `message` are what the adapter read from the provider's error body. 401 / 403 mean our
    credentials, signature or permissions are wrong: a configuration error an operator must fix,
    not a bad payment.
    """
    request = response.request
    detail = _clean(message) if message else response.reason_phrase
    text = (
        f"{request.method} {request.url.path} rejected ({response.status_code}"
        f"{' ' + _clean(code) if code else ''}): {detail}"
    )
    if response.status_code in (401, 403):
        raise GatewayConfigError(text, code=code or "gateway_auth_failed")
    raise GatewayInvalidRequest(text, code=code)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """`Retry-After` as seconds from now: delta-seconds or an HTTP date (RFC 9110 10.2.3).
    None when absent or unreadable; never negative."""
    if not value:
        return None
    value = value.strip()
    if _DELTA_SECONDS.match(value):
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _describe(exc: Exception) -> str:
    # httpx's messages are about sockets and protocols ("timed out", "Server disconnected"); the
    # class name alone is enough when there is none.
    text = _clean(str(exc))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _clean(text: str) -> str:
    text = _UNPRINTABLE.sub(" ", text).strip()
    if len(text) > MAX_PROVIDER_MESSAGE:
        return text[: MAX_PROVIDER_MESSAGE - 1] + "…"
    return text
