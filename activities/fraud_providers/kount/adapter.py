"""The Kount 360 adapter. Auth: `POST <token_url>` with `Authorization: Basic <API key>` and
`grant_type=client_credentials&scope=k1_integration_api` gives a bearer token for about 20 minutes;
it is kept until shortly before it expires (Kount rate-limits the token endpoint), and refreshed
once when the Orders API answers 401."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from activities.fraud_providers.base import ScreeningRejected, ScreeningUnavailable
from activities.fraud_providers.http import HttpSettings, ProviderHttp
from activities.fraud_providers.kount import transform
from workflows.fraud_io import FeedbackCall, FeedbackKind, ScreeningCall, ScreeningVerdict

# Refresh this long before the token's own expiry: a call must not set out with a dying token.
_TOKEN_MARGIN_SECONDS = 60


class KountSettings(BaseModel):
    """`[fraud_detection.kount]`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    api_key: SecretStr  # the API key from the Kount 360 portal (Basic credential of the token call)
    channel: str = Field(default="DEFAULT", min_length=1)  # the website / channel set up in Kount
    base_url: str = "https://api.kount.com"
    token_url: str = "https://login.kount.com/oauth2/ausdppksgrbyM0abp357/v1/token"
    http: HttpSettings = Field(default_factory=HttpSettings)


class KountProvider:
    name = "kount"
    # The Orders API takes the gateway's outcome; chargebacks reach Kount through the processor.
    feedback_kinds = frozenset({FeedbackKind.CAPTURED})

    def __init__(self, settings: KountSettings) -> None:
        self._settings = settings
        self._http = ProviderHttp(self.name, settings.base_url, settings.http)
        self._token: tuple[str, float] | None = None  # (token, monotonic expiry)
        self._token_lock = asyncio.Lock()

    async def _bearer(self, *, renew: bool = False) -> str:
        async with self._token_lock:
            if renew or self._token is None or time.monotonic() >= self._token[1]:
                self._token = await self._new_token()
            return self._token[0]

    async def _new_token(self) -> tuple[str, float]:
        status, body = await self._http.request(
            "POST",
            self._settings.token_url,
            form=transform.TOKEN_FORM,
            headers={"Authorization": f"Basic {self._settings.api_key.get_secret_value()}"},
        )
        token = body.get("access_token") if isinstance(body, dict) else None
        if status >= 400 or not token:
            raise ScreeningRejected(self.name, f"token request refused: HTTP {status}")
        lifetime = int(body.get("expires_in", 1200))
        return str(token), time.monotonic() + max(0, lifetime - _TOKEN_MARGIN_SECONDS)

    async def _call(
        self, method: str, path: str, body: dict[str, Any], params: dict[str, str] | None = None
    ) -> Any:
        try:
            return await self._call_with(await self._bearer(), method, path, body, params)
        except ScreeningRejected:
            # 401 / 403: the token may have expired early. One fresh token; refused again is final.
            return await self._call_with(await self._bearer(renew=True), method, path, body, params)

    async def _call_with(
        self, token: str, method: str, path: str, body: dict[str, Any], params: dict[str, str] | None
    ) -> Any:
        status, answer = await self._http.request(
            method, path, json_data=body, params=params, headers={"Authorization": f"Bearer {token}"}
        )
        if status >= 400:
            raise self._http.rejected(f"{method} {path}", status, answer)
        return answer

    async def screen(self, call: ScreeningCall) -> ScreeningVerdict:
        answer = await self._call(
            "POST",
            transform.ORDERS,
            transform.order(call, self._settings.channel, datetime.now(UTC)),
            params={"riskInquiry": "true"},
        )
        verdict = transform.verdict(answer)
        if verdict is None:
            raise ScreeningUnavailable(self.name, "order answer without a risk inquiry decision")
        return verdict

    async def feedback(self, call: FeedbackCall) -> None:
        if call.reference is None:
            raise ScreeningRejected(self.name, "no Kount order id to update")
        await self._call("PATCH", f"{transform.ORDERS}/{call.reference}", transform.captured(call))

    async def aclose(self) -> None:
        await self._http.aclose()
