"""Airwallex, over REST through the shared httpx transport (Airwallex has no official Python SDK).

Authentication: `POST /api/v1/authentication/login` with `x-client-id` / `x-api-key` gives a bearer
token (30 minutes), kept in a `TokenCache` until shortly before it expires; a 401 on any call drops
it, and the call is made once more with a new one.

A payment is one Payment Intent, `merchant_order_id` = our payment id: created, then confirmed with
the customer's card (a payment method id from Airwallex's card element). Every mutating call carries
its own `request_id`, derived from the workflow's idempotency key and the step (transform.request_id),
so a retried activity repeats the same requests: Airwallex answers a repeated `request_id` with the
first outcome. A retried authorize that finds the intent already confirmed answers its state instead
of trying the card again. A payment whose create answer was lost is found by its
`merchant_order_id`; a refund by the `durapay_refund_id` in its metadata.

Left out, and why: saved cards (Airwallex customers and payment consents) - the Gateway interface's
customer calls serve Stripe's model and nothing in durapay saves an Airwallex card yet; non-card
methods and the Hosted Payment Page - the profile offers cards, which the shop's page tokenizes with
Airwallex's card element; incremental authorization and several captures of one authorization -
PaymentWorkflow captures once; connected accounts (`x-on-behalf-of`, `x-login-as`) - one account per
configuration; the `x-api-version` header - the account's default version is used. Protocol details
not confirmed from Airwallex's own reference (the fake follows this adapter's reading): the list
filter `merchant_order_id` on `GET /api/v1/pa/payment_intents` and `payment_intent_id` on
`GET /api/v1/pa/refunds`, the confirm body's `payment_method.id`, the error codes
`invalid_status_for_operation` / `duplicate_request`, and that a repeated `request_id` answers the
first outcome (the adapter copes with either a replay or a `duplicate_request` refusal).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import httpx

from activities.gateways.airwallex import GATEWAY_ID
from activities.gateways.airwallex.settings import AirwallexSettings
from activities.gateways.airwallex.transform import (
    METADATA_REFUND_ID,
    cancel_body,
    capture_body,
    confirm_body,
    confirmed_before,
    create_body,
    decode,
    encode,
    intent_result,
    refund_body,
    refund_result,
    wire_amount,
)
from activities.gateways.airwallex.webhooks import events_of, verified_event
from activities.gateways.base import (
    Gateway,
    GatewayInvalidRequest,
    GatewayOutcomeUnknown,
)
from activities.gateways.http import HttpTransport, raise_rejection
from activities.gateways.token_cache import IssuedToken, TokenCache
from workflows.domain import Failure, GatewayProfile, NextActionType, RefundStatus
from workflows.gateway_io import (
    AuthorizeCall,
    CancelCall,
    CaptureCall,
    GatewayEvent,
    GatewayPaymentStatus,
    GatewayResult,
    LookupCall,
    RefundCall,
    RefundLookupCall,
    RefundResult,
)

INTENTS = "/api/v1/pa/payment_intents"
REFUNDS = "/api/v1/pa/refunds"
LOGIN = "/api/v1/authentication/login"

# Airwallex's error codes for "not in a state that allows this" and "this request_id was used with
# other parameters": either way the truthful answer is the object's current state.
_WRONG_STATE = frozenset({"invalid_status_for_operation", "duplicate_request"})
_NOT_FOUND = frozenset({"resource_not_found", "not_found"})


class AirwallexGateway(Gateway):
    def __init__(self, settings: AirwallexSettings, *, transport: HttpTransport | None = None) -> None:
        self._settings = settings
        self._transport = transport or HttpTransport(
            "Airwallex", settings.endpoint, settings.http, headers={"User-Agent": "durapay"}
        )
        self._tokens = TokenCache(self._login, refresh_margin_seconds=settings.token_refresh_margin_seconds)
        self._profile = GatewayProfile(
            id=GATEWAY_ID,
            name="Airwallex",
            methods=["card"],
            currencies=list(settings.currencies),
            min_minor=settings.min_minor,
            max_minor=settings.max_minor,
            supports_partial_capture=True,
            supports_manual_capture=True,
            # 3-D Secure redirect: `payment_intent.*` webhooks tell every outcome.
            notified_actions=[NextActionType.REDIRECT_TO_URL],
        )

    def __repr__(self) -> str:
        return f"AirwallexGateway(api_base={self._settings.endpoint!r})"

    @property
    def profile(self) -> GatewayProfile:
        return self._profile

    # -- plumbing ---------------------------------------------------------------------------------

    async def _login(self) -> IssuedToken:
        response = await self._transport.request(
            "POST",
            LOGIN,
            headers={
                "x-client-id": self._settings.client_id,
                "x-api-key": self._settings.api_key.get_secret_value(),
            },
        )
        answer = self._answer(response)
        token, expires_at = answer.get("token"), answer.get("expires_at")
        if not token or not expires_at:
            raise GatewayOutcomeUnknown("Airwallex login answered without a token")
        try:
            expiry = datetime.strptime(str(expires_at), "%Y-%m-%dT%H:%M:%S%z").timestamp()
        except ValueError:
            expiry = datetime.fromisoformat(str(expires_at)).timestamp()
        return IssuedToken(value=str(token), expires_at=expiry)

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """One authenticated request; a refused token is replaced and the request made once more.
        A 401 means Airwallex did not act on the request, so the repeat is safe."""
        content = encode(body) if body is not None else None
        for attempt in (1, 2):
            token = await self._tokens.get()
            headers = {"Authorization": f"Bearer {token}"}
            if content is not None:
                headers["Content-Type"] = "application/json"
            response = await self._transport.request(
                method, path, content=content, params=params, headers=headers
            )
            if response.status_code != 401 or attempt == 2:
                return response
            self._tokens.invalidate(token)
        raise AssertionError("unreachable")

    @staticmethod
    def _answer(response: httpx.Response) -> dict[str, Any]:
        """The JSON of a 2xx answer; a refusal (4xx) raised as its final error."""
        try:
            data = decode(response.content) if response.content else {}
        except ValueError:
            data = None
        if response.is_success:
            if not isinstance(data, dict):
                raise GatewayOutcomeUnknown(
                    f"Airwallex answered {response.request.url.path} with no JSON object"
                )
            return data
        error = data if isinstance(data, dict) else {}
        raise_rejection(response, code=error.get("code"), message=error.get("message"))

    async def _intent(self, intent_id: str) -> dict[str, Any]:
        return self._answer(await self._call("GET", f"{INTENTS}/{intent_id}"))

    async def _find_intent(self, payment_id: str) -> dict[str, Any] | None:
        """Our payment's intent by `merchant_order_id`, for when its id never reached us. One create
        request makes one intent; should there be more, the one that moved money wins."""
        answer = self._answer(await self._call("GET", INTENTS, params={"merchant_order_id": payment_id}))
        intents = [i for i in answer.get("items") or [] if i.get("merchant_order_id") == payment_id]
        if not intents:
            return None
        rank = {"SUCCEEDED": 3, "REQUIRES_CAPTURE": 2, "PENDING": 1}
        return max(intents, key=lambda i: rank.get(i.get("status"), 0))

    async def _intent_id(self, payment_id: str, provider_payment_id: str | None) -> str | None:
        if provider_payment_id:
            return provider_payment_id
        intent = await self._find_intent(payment_id)
        return intent["id"] if intent else None

    async def _post_intent(self, path: str, body: Mapping[str, Any], intent_id: str) -> GatewayResult:
        """A mutating call on an intent; refused because the intent moved on (captured, cancelled)
        or because the request was answered before, the answer is the intent's current state."""
        try:
            return intent_result(self._answer(await self._call("POST", path, body=body)))
        except GatewayInvalidRequest as exc:
            if exc.code not in _WRONG_STATE:
                raise
        return intent_result(await self._intent(intent_id))

    # -- payments ---------------------------------------------------------------------------------

    async def authorize(self, call: AuthorizeCall) -> GatewayResult:
        confirm = confirm_body(call)  # refused before anything is sent
        create = create_body(call, self._settings)
        try:
            intent = self._answer(await self._call("POST", f"{INTENTS}/create", body=create))
        except GatewayInvalidRequest as exc:
            if exc.code != "duplicate_request":
                raise
            found = await self._find_intent(call.payment_id)
            if found is None:
                raise
            intent = found
        if confirmed_before(intent):
            return intent_result(intent)
        return await self._post_intent(f"{INTENTS}/{intent['id']}/confirm", confirm, intent["id"])

    async def capture(self, call: CaptureCall) -> GatewayResult:
        body = capture_body(call.idempotency_key, call.amount, self._settings)
        intent_id = await self._intent_id(call.payment_id, call.provider_payment_id)
        if intent_id is None:
            return GatewayResult(status=GatewayPaymentStatus.NOT_FOUND)
        return await self._post_intent(f"{INTENTS}/{intent_id}/capture", body, intent_id)

    async def cancel(self, call: CancelCall) -> GatewayResult:
        body = cancel_body(call.idempotency_key, call.reason)
        intent_id = await self._intent_id(call.payment_id, call.provider_payment_id)
        if intent_id is None:
            return GatewayResult(status=GatewayPaymentStatus.NOT_FOUND)
        return await self._post_intent(f"{INTENTS}/{intent_id}/cancel", body, intent_id)

    async def lookup(self, call: LookupCall) -> GatewayResult:
        # `call.action_data` (what the customer's return carried) is never trusted: ask Airwallex.
        if call.provider_payment_id:
            try:
                intent: dict[str, Any] | None = await self._intent(call.provider_payment_id)
            except GatewayInvalidRequest as exc:
                if exc.code not in _NOT_FOUND:
                    raise
                intent = None
        else:
            intent = await self._find_intent(call.payment_id)
        if intent is None:
            return GatewayResult(status=GatewayPaymentStatus.NOT_FOUND)
        if intent.get("merchant_order_id") != call.payment_id:
            raise GatewayInvalidRequest(
                f"Payment Intent {intent.get('id')} belongs to another payment", code="payment_mismatch"
            )
        return intent_result(intent)

    # -- refunds ----------------------------------------------------------------------------------

    async def refund(self, call: RefundCall) -> RefundResult:
        wire_amount(call.amount, self._settings)  # refused before anything is sent
        intent_id = await self._intent_id(call.payment_id, call.provider_payment_id)
        if intent_id is None:
            raise GatewayInvalidRequest(
                f"no Airwallex payment for {call.payment_id}", code="payment_not_found"
            )
        body = refund_body(call, intent_id, self._settings)
        try:
            refund = self._answer(await self._call("POST", f"{REFUNDS}/create", body=body))
        except GatewayInvalidRequest as exc:
            if exc.code != "duplicate_request":
                raise
            found = await self._find_refund(intent_id, call.refund_id)
            if found is None:
                raise
            refund = found
        return refund_result(call.refund_id, refund)

    async def lookup_refund(self, call: RefundLookupCall) -> RefundResult:
        if call.provider_refund_id:
            refund = self._answer(await self._call("GET", f"{REFUNDS}/{call.provider_refund_id}"))
            return refund_result(call.refund_id, refund)
        intent_id = await self._intent_id(call.payment_id, call.provider_payment_id)
        found = await self._find_refund(intent_id, call.refund_id) if intent_id else None
        if found is not None:
            return refund_result(call.refund_id, found)
        return RefundResult(
            refund_id=call.refund_id,
            status=RefundStatus.FAILED,
            failure=Failure(code="refund_not_found", message="Airwallex has no refund under this id"),
        )

    async def _find_refund(self, intent_id: str, refund_id: str) -> dict[str, Any] | None:
        page = 0
        while True:
            answer = self._answer(
                await self._call(
                    "GET",
                    REFUNDS,
                    params={"payment_intent_id": intent_id, "page_num": str(page), "page_size": "100"},
                )
            )
            for refund in answer.get("items") or []:
                if (refund.get("metadata") or {}).get(METADATA_REFUND_ID) == refund_id:
                    return refund
            if not answer.get("has_more"):
                return None
            page += 1

    # -- webhooks ---------------------------------------------------------------------------------

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[GatewayEvent]:
        return events_of(verified_event(headers, body, self._settings), self.id)

    async def aclose(self) -> None:
        await self._transport.aclose()


def build(settings: AirwallexSettings) -> AirwallexGateway:
    """The registry's factory."""
    return AirwallexGateway(settings)
