"""The one HTTP client the screening adapters share: JSON in and out, and every way a call can fail
mapped onto `ScreeningUnavailable` / `ScreeningRejected` exactly once.

Screening never moves money, so there is no "outcome unknown" here: a call without an answer is
simply unavailable and the activity asks again (the services key orders by our order id, so a
repeated screening replaces the first rather than adding a second order; Sift appends events, which
it tolerates). Messages name the service, the method and the path, never bodies or headers: those
carry API keys and customer data.
"""

from __future__ import annotations

import json
import re
import secrets
from decimal import Decimal
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field

from activities.fraud_providers.base import ScreeningRejected, ScreeningUnavailable

# Error bodies end up in activity failures: keep what is quoted short.
_MAX_MESSAGE = 200
# Answers after which the same request may well succeed: overload, rate limit, gateway trouble.
_TRANSIENT_STATUS = frozenset({408, 409, 425, 429})


class HttpSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Screening sits before every payment: a slow service must not hold checkout for long. The
    # activity retries within its own budget (workflows/activity_options.py FRAUD_SCREENING).
    timeout_seconds: float = Field(default=3.0, gt=0)
    max_connections: int = Field(default=20, gt=0)


def json_body(data: Any) -> bytes:
    """JSON with `Decimal` amounts written as exact JSON numbers (never through a float)."""

    # A fresh marker per body: no string in the data can pass for a number.
    marker = f"dec-{secrets.token_hex(8)}:"

    def default(value: Any) -> Any:
        if isinstance(value, Decimal) and value.is_finite():
            return f"{marker}{value}"
        raise TypeError(f"cannot encode {type(value).__name__}")

    text = json.dumps(data, default=default, separators=(",", ":"))
    return re.sub(f'"{marker}(-?[0-9.E+-]+)"', r"\1", text).encode()


class ProviderHttp:
    """An `httpx.AsyncClient` for one service, shared by every concurrent activity."""

    def __init__(self, provider: str, base_url: str, settings: HttpSettings) -> None:
        self.provider = provider
        self._client = httpx.AsyncClient(
            base_url=base_url,
            timeout=settings.timeout_seconds,
            limits=httpx.Limits(max_connections=settings.max_connections),
            follow_redirects=False,
        )

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_data: Any = None,
        form: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        auth: httpx.Auth | tuple[str, str] | None = None,
        ok: tuple[int, ...] = (200, 201),
    ) -> tuple[int, Any]:
        """Send, and return (status, parsed JSON body) for a status in `ok` or any 4xx the adapter
        reads itself (Sift answers errors as 400 + a status code in the body). Transport trouble,
        5xx and rate limits raise `ScreeningUnavailable`; 401 / 403 raise `ScreeningRejected`."""
        what = f"{method} {path}"
        body: bytes | None = None
        send_headers = dict(headers or {})
        if json_data is not None:
            body = json_body(json_data)
            send_headers["Content-Type"] = "application/json"
        try:
            response = await self._client.request(
                method,
                path,
                content=body,
                data=form,
                params=params,
                headers=send_headers,
                auth=auth if auth is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.TransportError as exc:
            raise ScreeningUnavailable(self.provider, f"{what}: {type(exc).__name__}") from None
        status = response.status_code
        if status >= 500 or status in _TRANSIENT_STATUS:
            raise ScreeningUnavailable(self.provider, f"{what}: HTTP {status}")
        if status in (401, 403):
            raise ScreeningRejected(self.provider, f"{what}: HTTP {status}: check the credentials")
        if status not in ok and status < 400:
            raise ScreeningUnavailable(self.provider, f"{what}: unexpected HTTP {status}")
        try:
            parsed = response.json(parse_float=Decimal) if response.content else None
        except ValueError:
            raise ScreeningUnavailable(self.provider, f"{what}: HTTP {status} without JSON") from None
        return status, parsed

    def rejected(self, what: str, status: int, detail: Any) -> ScreeningRejected:
        return ScreeningRejected(self.provider, f"{what}: HTTP {status}: {str(detail)[:_MAX_MESSAGE]}")

    async def aclose(self) -> None:
        await self._client.aclose()
