"""The Signifyd adapter. Auth: HTTP Basic with the team API key as the user and an empty password.
400 / 401 / 403 are final; 404 / 408 / 409 / 429 and 5xx are worth retrying (Signifyd's "Error
handling" page), which is what `ProviderHttp` does with all but 404, read here."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from activities.fraud_providers.base import ScreeningUnavailable
from activities.fraud_providers.http import HttpSettings, ProviderHttp
from activities.fraud_providers.signifyd import transform
from workflows.fraud_io import FeedbackCall, FeedbackKind, ScreeningCall, ScreeningVerdict


class SignifydSettings(BaseModel):
    """`[fraud_detection.signifyd]`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    api_key: SecretStr  # the team API key
    base_url: str = "https://api.signifyd.com"
    http: HttpSettings = Field(default_factory=HttpSettings)


class SignifydProvider:
    name = "signifyd"
    feedback_kinds = frozenset({FeedbackKind.CAPTURED, FeedbackKind.DISPUTED})

    def __init__(self, settings: SignifydSettings) -> None:
        self._settings = settings
        self._http = ProviderHttp(self.name, settings.base_url, settings.http)

    async def _post(self, path: str, body: dict[str, Any]) -> Any:
        status, answer = await self._http.request(
            "POST", path, json_data=body, auth=(self._settings.api_key.get_secret_value(), "")
        )
        if status == 404:
            raise ScreeningUnavailable(self.name, f"POST {path}: HTTP 404")
        if status >= 400:
            raise self._http.rejected(f"POST {path}", status, answer)
        return answer

    async def screen(self, call: ScreeningCall) -> ScreeningVerdict:
        answer = await self._post(transform.CHECKOUTS, transform.checkout(call, datetime.now(UTC)))
        verdict = transform.verdict(answer)
        if verdict is None:
            raise ScreeningUnavailable(self.name, "checkout answer without a checkpointAction")
        return verdict

    async def feedback(self, call: FeedbackCall) -> None:
        if call.kind is FeedbackKind.CAPTURED:
            await self._post(transform.TRANSACTIONS, transform.sale(call))
        else:
            await self._post(transform.CHARGEBACKS, transform.chargeback(call))

    async def aclose(self) -> None:
        await self._http.aclose()
