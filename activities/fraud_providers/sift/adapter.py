"""The Sift adapter: `$create_order` with the synchronous payment-abuse workflow, feedback events.

Auth: the Events API takes the API key in the body (`$api_key`); the Decisions API takes it as the
HTTP Basic user with an empty password. The decision list (id -> category) is read once and again
only when a workflow names a decision it does not hold (ids follow display names and get renamed).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from activities.fraud_providers.base import ScreeningUnavailable
from activities.fraud_providers.http import HttpSettings, ProviderHttp
from activities.fraud_providers.sift import transform
from workflows.fraud_io import FeedbackCall, FeedbackKind, ScreeningCall, ScreeningVerdict

EVENTS_PATH = "/v205/events"


class SiftSettings(BaseModel):
    """`[fraud_detection.sift]`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    api_key: SecretStr
    account_id: str = Field(min_length=1)
    base_url: str = "https://api.sift.com"
    http: HttpSettings = Field(default_factory=HttpSettings)


class SiftProvider:
    name = "sift"
    feedback_kinds = frozenset({FeedbackKind.CAPTURED, FeedbackKind.DISPUTED})

    def __init__(self, settings: SiftSettings, *, review_threshold: int, block_threshold: int) -> None:
        self._settings = settings
        self._thresholds = (review_threshold, block_threshold)
        self._http = ProviderHttp(self.name, settings.base_url, settings.http)
        self._categories: dict[str, str] = {}

    @property
    def _key(self) -> str:
        return self._settings.api_key.get_secret_value()

    async def _send_event(
        self, event: dict[str, Any], params: dict[str, str] | None = None
    ) -> dict[str, Any]:
        status, body = await self._http.request("POST", EVENTS_PATH, json_data=event, params=params)
        code, message = transform.body_status(body)
        if code in transform.RETRYABLE_STATUS:
            raise ScreeningUnavailable(self.name, f"POST {EVENTS_PATH}: status {code} {message}")
        if code != 0:
            raise self._http.rejected(
                f"POST {EVENTS_PATH} ({event['$type']})", status, f"status {code} {message}"
            )
        assert isinstance(body, dict)
        return body

    async def screen(self, call: ScreeningCall) -> ScreeningVerdict:
        body = await self._send_event(
            transform.create_order(call, self._key),
            params={
                "return_workflow_status": "true",
                "return_score": "true",
                "abuse_types": transform.ABUSE_TYPE,
            },
        )
        scoring_status, message = transform.body_status(body.get("score_response"))
        if scoring_status != 0:
            # The event was taken but scoring / the workflows failed: no verdict to act on now.
            raise ScreeningUnavailable(self.name, f"scoring failed: status {scoring_status} {message}")
        if any(d not in self._categories for d in transform.decision_ids(body)):
            self._categories = await self._decision_list()
        return transform.verdict(body, self._categories, *self._thresholds)

    async def _decision_list(self) -> dict[str, str]:
        path = f"/v3/accounts/{self._settings.account_id}/decisions"
        status, body = await self._http.request(
            "GET",
            path,
            params={"entity_type": "order", "abuse_types": transform.ABUSE_TYPE},
            auth=(self._key, ""),
        )
        if status >= 400:
            raise self._http.rejected(f"GET {path}", status, body)
        return transform.categories(body)

    async def feedback(self, call: FeedbackCall) -> None:
        await self._send_event(transform.feedback_event(call, self._key))

    async def aclose(self) -> None:
        await self._http.aclose()
