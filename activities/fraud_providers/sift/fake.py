"""A fake Sift: the Events API (`$create_order` with a synchronous workflow, `$transaction`,
`$chargeback`) and the decision list, with Sift's checks and its answer shapes.

Checks what Sift checks: the `$api_key` in the body (status 51), a known `$type` (114), the fields
each event requires (55), integer `$amount` micros; Basic auth on the Decisions API. A rate limit
answers status 60 with HTTP 429.
"""

from __future__ import annotations

import base64
import time
from typing import Any

from aiohttp import web

from activities.fraud_providers.fake_server import FakeServer, scripted_decision
from workflows.domain import FraudDecision

DECISIONS = {
    FraudDecision.ALLOW: ("accept_order_payment_abuse", "ACCEPT", 0.12),
    FraudDecision.BLOCK: ("block_order_payment_abuse", "BLOCK", 0.97),
}
_REQUIRED = {
    "$create_order": ("$order_id",),
    "$transaction": ("$amount", "$currency_code"),
    "$chargeback": (),
}


def _error(status: int, message: str, http_status: int = 400) -> web.Response:
    return web.json_response(
        {"status": status, "error_message": message, "time": int(time.time())}, status=http_status
    )


class FakeSift(FakeServer):
    def __init__(self, api_key: str = "sift_test_key", account_id: str = "acct_1") -> None:
        super().__init__()
        self.api_key = api_key
        self.account_id = account_id
        self.runs = 0

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v205/events", self._events)
        app.router.add_get(f"/v3/accounts/{self.account_id}/decisions", self._decisions)

    async def _events(self, request: web.Request) -> web.Response:
        try:
            event = await request.json()
        except ValueError:
            return _error(56, "Invalid JSON in request body")
        if not isinstance(event, dict):
            return _error(57, "Invalid request body")
        if event.get("$api_key") != self.api_key:
            return _error(51, "Invalid API key")
        kind = event.get("$type")
        if kind not in _REQUIRED:
            return _error(114, "Invalid event type")
        if not event.get("$user_id") and not event.get("$session_id"):
            return _error(55, "Missing required field: $user_id or $session_id")
        missing = [f for f in _REQUIRED[kind] if f not in event]
        if kind == "$chargeback" and not (event.get("$order_id") or event.get("$transaction_id")):
            missing.append("$order_id or $transaction_id")
        if missing:
            return _error(55, f"Missing required field: {', '.join(missing)}")
        if "$amount" in event and (not isinstance(event["$amount"], int) or event["$amount"] < 0):
            return _error(53, "$amount must be a positive integer of micros")
        self.record(request, event)
        answer: dict[str, Any] = {"status": 0, "error_message": "OK", "time": int(time.time())}
        if kind == "$create_order" and request.query.get("return_workflow_status") == "true":
            answer["score_response"] = self._score_response(event)
        return web.json_response(answer)

    def _score_response(self, event: dict[str, Any]) -> dict[str, Any]:
        self.runs += 1
        decision = scripted_decision(event.get("$user_email"))
        user = event.get("$user_id") or event.get("$session_id")
        if decision is FraudDecision.REVIEW:
            score, history = (
                0.64,
                [
                    {
                        "app": "review_queue",
                        "name": "Payment review",
                        "state": "running",
                        "config": {"buttons": []},
                    }
                ],
            )
        else:
            decision_id, _, score = DECISIONS[decision]
            history = [
                {
                    "app": "decision",
                    "name": decision_id,
                    "state": "finished",
                    "config": {"decision_id": decision_id},
                }
            ]
        return {
            "status": 0,
            "error_message": "OK",
            "user_id": user,
            "scores": {"payment_abuse": {"score": score, "reasons": [{"name": "fake_signal", "value": "1"}]}},
            "latest_labels": {},
            "workflow_statuses": [
                {
                    "id": f"run_{self.runs}",
                    "state": "running" if decision is FraudDecision.REVIEW else "finished",
                    "config": {"id": "wf_payment", "version": "1"},
                    "config_display_name": "Payment abuse",
                    "abuse_types": ["payment_abuse"],
                    "entity": {"type": "order", "id": event.get("$order_id")},
                    "history": history,
                }
            ],
        }

    async def _decisions(self, request: web.Request) -> web.Response:
        expected = "Basic " + base64.b64encode(f"{self.api_key}:".encode()).decode()
        if request.headers.get("Authorization") != expected:
            return _error(51, "Invalid API key", http_status=401)
        data = [
            {
                "id": decision_id,
                "name": decision_id,
                "category": category,
                "entity_type": "order",
                "abuse_type": "payment_abuse",
            }
            for decision_id, category, _ in DECISIONS.values()
        ]
        return web.json_response({"data": data, "has_more": False})
