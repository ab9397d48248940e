"""An offline, deterministic payment provider, so that every flow runs without a network.

It behaves like a provider, not like a stub: an in-memory ledger of charges and refunds keyed by our
payment id, an idempotency store keyed by the call's idempotency key (a retried call returns the
first answer and never charges twice; the same key with other parameters is refused, as Stripe
does), lookups, partial captures, several partial refunds, voids, saved payment methods, and webhooks
signed like Stripe's (`Mock-Signature: t=<unix>,v1=<hex>`).

What happens is chosen by the payment method token, Stripe's test names plus a few of our own:

| token | behaviour |
|---|---|
| `tok_visa`, `tok_mastercard` | approved |
| `tok_chargeDeclined` | declined, `generic_decline` |
| `tok_chargeDeclinedInsufficientFunds` | declined, `insufficient_funds` |
| `tok_threeDSecure2Required` | requires a 3-D Secure redirect; the customer's return (`/actions/complete`, with or without data) completes it unless its data says `three_ds_result=failed` / `abandoned` |
| `tok_transient_<N>` | approved, but every keyed call fails with `GatewayTransientError` the first N times per idempotency key |
| `tok_ratelimited_<N>` | the same with `GatewayRateLimited` |
| `tok_timeout` | approved, but the first answer per idempotency key is "lost": the call is recorded, then `GatewayOutcomeUnknown` is raised; the retry returns the recorded result |
| `tok_async_webhook` | `processing`; only `settle()` (and the webhook it yields) completes it |

`pm_card_<name>` is accepted for `tok_<name>`, and saved payment methods (`pm_mock_...`) stand for the
token they were attached with. A success token with `request_three_ds` asks for 3-D Secure too, like
Stripe's `request_three_d_secure=any`.

The ledger lives in this process: enough for tests, the demo and a dev stack, and it forgets
everything on restart, as a real provider would not.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TypeVar, cast
from urllib.parse import urlencode

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from activities.gateways.base import (
    Customer,
    Gateway,
    GatewayConfigError,
    GatewayInvalidRequest,
    GatewayOutcomeUnknown,
    GatewayRateLimited,
    GatewayTransientError,
    SavedPaymentMethod,
    WebhookVerificationError,
)
from activities.gateways.mock import GATEWAY_ID
from activities.gateways.mock.settings import MockSettings
from activities.gateways.signing import constant_time_equals, hmac_sha256_hex
from workflows.domain import (
    Contract,
    Failure,
    GatewayProfile,
    NextAction,
    NextActionType,
    PaymentMethod,
    RefundStatus,
    WalletMethod,
)
from workflows.gateway_io import (
    AuthorizeCall,
    CancelCall,
    CaptureCall,
    GatewayEvent,
    GatewayEventKind,
    GatewayPaymentStatus,
    GatewayResult,
    LookupCall,
    RefundCall,
    RefundLookupCall,
    RefundResult,
)
from workflows.money import Amount

SIGNATURE_HEADER = "Mock-Signature"

R = TypeVar("R", bound=GatewayResult | RefundResult)


def build(settings: MockSettings) -> MockGateway:
    return MockGateway(settings)


class _Behaviour(StrEnum):
    APPROVE = "approve"
    DECLINE = "decline"
    THREE_DS = "three_ds"
    TRANSIENT = "transient"
    RATE_LIMITED = "rate_limited"
    TIMEOUT = "timeout"
    ASYNC = "async"


@dataclass(frozen=True)
class _Token:
    name: str
    behaviour: _Behaviour
    brand: str = "visa"
    last4: str = "4242"  # Stripe's published test card numbers, not real cards
    decline_code: str | None = None
    failures: int = 0  # TRANSIENT / RATE_LIMITED: how many times per idempotency key


_STRIPE_TEST_TOKENS = {
    "visa": _Token("visa", _Behaviour.APPROVE),
    "mastercard": _Token("mastercard", _Behaviour.APPROVE, brand="mastercard", last4="4444"),
    "chargeDeclined": _Token(
        "chargeDeclined", _Behaviour.DECLINE, last4="0002", decline_code="generic_decline"
    ),
    "chargeDeclinedInsufficientFunds": _Token(
        "chargeDeclinedInsufficientFunds", _Behaviour.DECLINE, last4="9995", decline_code="insufficient_funds"
    ),
    "threeDSecure2Required": _Token("threeDSecure2Required", _Behaviour.THREE_DS, last4="3220"),
    "timeout": _Token("timeout", _Behaviour.TIMEOUT),
    "async_webhook": _Token("async_webhook", _Behaviour.ASYNC),
}
_COUNTED_TOKENS = {"transient_": _Behaviour.TRANSIENT, "ratelimited_": _Behaviour.RATE_LIMITED}


def parse_token(token: str) -> _Token | None:
    """The behaviour a test token stands for; None for a token the mock does not know."""
    for prefix in ("tok_", "pm_card_"):
        if token.startswith(prefix):
            name = token[len(prefix) :]
            break
    else:
        return None
    if name in _STRIPE_TEST_TOKENS:
        return _STRIPE_TEST_TOKENS[name]
    for stem, behaviour in _COUNTED_TOKENS.items():
        count = name[len(stem) :]
        if name.startswith(stem) and count.isascii() and count.isdigit():
            return _Token(name, behaviour, failures=int(count))
    return None


class MockWebhook(BaseModel):
    """The fields of a mock provider notification; `None`s are left out of the body."""

    model_config = ConfigDict(extra="forbid")

    type: str  # a GatewayEventKind value, or anything else (normalized to UNKNOWN)
    payment_id: str | None = None
    provider_payment_id: str | None = None
    amount_minor: int | None = None
    currency: str | None = None
    refund_id: str | None = None
    provider_refund_id: str | None = None
    dispute_id: str | None = None
    dispute_status: str | None = None
    dispute_reason: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    decline_code: str | None = None
    id: str | None = None  # default: derived from the content, so a re-delivery has the same id
    created: int | None = None  # default: now

    def event_id(self) -> str:
        if self.id:
            return self.id
        keys = (self.provider_payment_id, self.provider_refund_id, self.dispute_id)
        if not any(keys):
            return f"evt_mock_{uuid.uuid4().hex[:24]}"
        return "evt_mock_" + _digest(self.type, *keys, self.dispute_status)


@dataclass
class _Refund:
    refund_id: str
    provider_refund_id: str
    amount_minor: int
    status: RefundStatus = RefundStatus.SUCCEEDED

    def result(self) -> RefundResult:
        return RefundResult(
            refund_id=self.refund_id, status=self.status, provider_refund_id=self.provider_refund_id
        )


@dataclass
class _Charge:
    payment_id: str
    provider_payment_id: str
    amount: Amount
    capture: bool
    token: _Token
    status: GatewayPaymentStatus
    authorized_minor: int = 0
    captured_minor: int = 0
    next_action: NextAction | None = None
    failure: Failure | None = None
    refunds: dict[str, _Refund] = field(default_factory=dict)

    @property
    def refunded_minor(self) -> int:
        return sum(r.amount_minor for r in self.refunds.values() if r.status != RefundStatus.FAILED)

    def approve(self) -> None:
        self.next_action = None
        self.authorized_minor = self.amount.minor
        if self.capture:
            self.status = GatewayPaymentStatus.SUCCEEDED
            self.captured_minor = self.amount.minor
        else:
            self.status = GatewayPaymentStatus.AUTHORIZED

    def decline(self, failure: Failure) -> None:
        self.next_action = None
        self.status = GatewayPaymentStatus.DECLINED
        self.failure = failure

    def result(self) -> GatewayResult:
        response = {"mock_status": self.status.value}
        if self.failure and self.failure.decline_code:
            response["decline_code"] = self.failure.decline_code
        return GatewayResult(
            status=self.status,
            provider_payment_id=self.provider_payment_id,
            authorized_minor=self.authorized_minor or None,
            captured_minor=self.captured_minor or None,
            next_action=self.next_action,
            failure=self.failure,
            provider_response=response,
        )


class MockGateway(Gateway):
    """Unlike a real adapter it holds state: the ledger *is* the simulated provider. Every operation
    does its bookkeeping without awaiting in between, so concurrent activities on one event loop see
    each call as atomic."""

    def __init__(self, settings: MockSettings) -> None:
        self._settings = settings
        self._profile = GatewayProfile(
            id=GATEWAY_ID,
            name=settings.name,
            methods=list(settings.methods),
            currencies=list(settings.currencies),
            min_minor=settings.min_minor,
            max_minor=settings.max_minor,
            supports_partial_capture=True,
            supports_manual_capture=True,
            # Its 3-D Secure page returns the customer, and its webhooks tell every outcome.
            notified_actions=[NextActionType.REDIRECT_TO_URL],
        )
        self._charges: dict[str, _Charge] = {}  # by provider payment id
        self._latest_charge: dict[str, str] = {}  # our payment id -> provider payment id
        self._replies: dict[str, tuple[str, GatewayResult | RefundResult]] = {}  # by idempotency key
        self._attempts: Counter[str] = Counter()  # by idempotency key
        self._customers: dict[str, Customer] = {}
        self._saved: dict[str, tuple[str, _Token, SavedPaymentMethod]] = {}  # pm id -> (customer, token, pm)

    @property
    def profile(self) -> GatewayProfile:
        return self._profile

    @property
    def settings(self) -> MockSettings:
        return self._settings

    # -- payments ----------------------------------------------------------------------------

    async def authorize(self, call: AuthorizeCall) -> GatewayResult:
        await self._latency()
        # A retry gets its first answer even if the method has since been detached.
        replayed: GatewayResult | None = self._replay(call.idempotency_key, call)
        if replayed is not None:
            return replayed
        token = self._check_authorize(call)

        def run() -> GatewayResult:
            charge = _Charge(
                payment_id=call.payment_id,
                provider_payment_id="pi_mock_" + _digest(call.idempotency_key),
                amount=call.amount,
                capture=call.capture,
                token=token,
                status=GatewayPaymentStatus.PROCESSING,
            )
            if token.behaviour == _Behaviour.DECLINE:
                charge.decline(
                    Failure(
                        code="card_declined",
                        message="Your card was declined.",
                        decline_code=token.decline_code,
                    )
                )
            elif token.behaviour == _Behaviour.THREE_DS or (
                call.request_three_ds and token.behaviour != _Behaviour.ASYNC
            ):
                charge.status = GatewayPaymentStatus.REQUIRES_ACTION
                query = {"payment": charge.provider_payment_id}
                if call.return_url:
                    query["return_url"] = call.return_url
                charge.next_action = NextAction(
                    type=NextActionType.REDIRECT_TO_URL,
                    url=f"{self._settings.three_ds_url}?{urlencode(query)}",
                    expires_at=call.expires_at,
                )
            elif token.behaviour != _Behaviour.ASYNC:
                charge.approve()
            self._charges[charge.provider_payment_id] = charge
            self._latest_charge[call.payment_id] = charge.provider_payment_id
            return charge.result()

        return self._execute(call.idempotency_key, call, token, run)

    async def capture(self, call: CaptureCall) -> GatewayResult:
        await self._latency()
        charge = self._require(call.payment_id, call.provider_payment_id)

        def run() -> GatewayResult:
            if charge.status != GatewayPaymentStatus.AUTHORIZED:
                raise GatewayInvalidRequest(
                    f"payment is {charge.status.value}, only an authorized payment can be captured",
                    code="payment_intent_unexpected_state",
                )
            self._same_currency(charge, call.amount)
            if not 0 < call.amount.minor <= charge.authorized_minor:
                raise GatewayInvalidRequest(
                    f"capture of {call.amount.minor} outside 1..{charge.authorized_minor}",
                    code="amount_too_large",
                )
            charge.captured_minor = call.amount.minor  # the rest of the hold is released
            charge.status = GatewayPaymentStatus.SUCCEEDED
            return charge.result()

        return self._keyed(call.idempotency_key, call, charge.token, run)

    async def cancel(self, call: CancelCall) -> GatewayResult:
        await self._latency()
        charge = self._find(call.payment_id, call.provider_payment_id)
        if charge is None:
            return GatewayResult(status=GatewayPaymentStatus.NOT_FOUND)

        def run() -> GatewayResult:
            # Too late to void a captured payment: nothing changes, and the answer is its current
            # state, as the other adapters give it; PaymentWorkflow applies it.
            if charge.status not in (GatewayPaymentStatus.SUCCEEDED, GatewayPaymentStatus.CANCELLED):
                charge.status = GatewayPaymentStatus.CANCELLED
                charge.next_action = None
                charge.authorized_minor = 0
            return charge.result()

        return self._keyed(call.idempotency_key, call, charge.token, run)

    async def lookup(self, call: LookupCall) -> GatewayResult:
        await self._latency()
        charge = self._find(call.payment_id, call.provider_payment_id)
        if charge is None:
            return GatewayResult(status=GatewayPaymentStatus.NOT_FOUND)
        if charge.status == GatewayPaymentStatus.REQUIRES_ACTION and (
            call.customer_returned or call.action_data
        ):
            # The customer is back from the challenge. A real provider knows the outcome itself;
            # the mock takes it from the return parameters so tests can choose it, and a return
            # that says nothing is a success (failed or abandoned only when the data says so).
            outcome = call.action_data.get("three_ds_result")
            if outcome in ("failed", "abandoned"):
                charge.decline(
                    Failure(
                        code="authentication_failed",
                        message=f"3-D Secure authentication {outcome}.",
                        decline_code=f"three_ds_{outcome}",
                    )
                )
            else:
                charge.approve()
        return charge.result()

    async def refund(self, call: RefundCall) -> RefundResult:
        await self._latency()
        charge = self._require(call.payment_id, call.provider_payment_id)

        def run() -> RefundResult:
            existing = charge.refunds.get(call.refund_id)
            if existing is not None:
                # Our refund id names one refund, whatever key it is retried under.
                return existing.result()
            self._same_currency(charge, call.amount)
            left = charge.captured_minor - charge.refunded_minor
            if charge.captured_minor == 0:
                raise GatewayInvalidRequest("nothing was captured to refund", code="charge_not_captured")
            if not 0 < call.amount.minor <= left:
                raise GatewayInvalidRequest(
                    f"refund of {call.amount.minor} outside 1..{left} (captured "
                    f"{charge.captured_minor}, refunded {charge.refunded_minor})",
                    code="amount_too_large",
                )
            refund = _Refund(
                refund_id=call.refund_id,
                provider_refund_id="re_mock_" + _digest(charge.provider_payment_id, call.refund_id),
                amount_minor=call.amount.minor,
            )
            charge.refunds[call.refund_id] = refund
            return refund.result()

        return self._keyed(call.idempotency_key, call, charge.token, run)

    async def lookup_refund(self, call: RefundLookupCall) -> RefundResult:
        await self._latency()
        charge = self._find(call.payment_id, call.provider_payment_id)
        refund = charge.refunds.get(call.refund_id) if charge else None
        if refund is None:
            # No such refund at the provider: no money moved, and the workflow may ask again.
            return RefundResult(
                refund_id=call.refund_id,
                status=RefundStatus.FAILED,
                failure=Failure(code="refund_not_found", message="the provider has no such refund"),
            )
        return refund.result()

    # -- simulated provider side ---------------------------------------------------------------

    def settle(self, payment_id: str, *, succeeded: bool = True) -> MockWebhook:
        """Complete a `tok_async_webhook` payment at the "provider" and return the notification it
        sends; post it with `send_webhook`. Lookups agree with the webhook from now on."""
        charge = self._find(payment_id, None)
        if charge is None or charge.status != GatewayPaymentStatus.PROCESSING:
            raise GatewayInvalidRequest(f"no processing payment {payment_id!r} to settle")
        if succeeded:
            charge.approve()
        else:
            charge.decline(Failure(code="payment_failed", message="The payment did not complete."))
        kind = {
            GatewayPaymentStatus.SUCCEEDED: GatewayEventKind.PAYMENT_SUCCEEDED,
            GatewayPaymentStatus.AUTHORIZED: GatewayEventKind.PAYMENT_AUTHORIZED,
            GatewayPaymentStatus.DECLINED: GatewayEventKind.PAYMENT_FAILED,
        }[charge.status]
        return self.webhook_for(payment_id, kind)

    def charges_for(self, payment_id: str) -> list[_Charge]:
        """Every charge the ledger holds for our payment: what "charged once" is checked on."""
        return [charge for charge in self._charges.values() if charge.payment_id == payment_id]

    def webhook_for(self, payment_id: str, kind: GatewayEventKind | str, **fields: str | int) -> MockWebhook:
        """A notification about one of the ledger's payments: ids, amount and failure filled in."""
        charge = self._find(payment_id, None)
        if charge is None:
            raise GatewayInvalidRequest(f"no payment {payment_id!r} in the mock ledger")
        base: dict[str, str | int | None] = {
            "type": str(kind),
            "payment_id": charge.payment_id,
            "provider_payment_id": charge.provider_payment_id,
            "amount_minor": charge.amount.minor,
            "currency": charge.amount.currency,
        }
        if charge.failure:
            base |= {
                "failure_code": charge.failure.code,
                "failure_message": charge.failure.message,
                "decline_code": charge.failure.decline_code,
            }
        refund_id = fields.get("refund_id")
        if isinstance(refund_id, str) and refund_id in charge.refunds:
            refund = charge.refunds[refund_id]
            base |= {"provider_refund_id": refund.provider_refund_id, "amount_minor": refund.amount_minor}
        return MockWebhook.model_validate(base | fields)

    def build_webhook(
        self,
        event: MockWebhook,
        *,
        timestamp: int | None = None,
        secrets: Sequence[SecretStr | str] | None = None,
    ) -> tuple[dict[str, str], bytes]:
        """(headers, body) of a signed notification. `secrets` defaults to `webhook_secret`; pass
        several to sign like Stripe does while a secret is being rolled."""
        created = event.created if event.created is not None else int(time.time())
        data = event.model_dump(exclude={"type", "id", "created"}, exclude_none=True)
        # Pretty-printed like Stripe's deliveries: a receiver that re-serializes before verifying
        # breaks here, as it would in production.
        body = json.dumps(
            {"id": event.event_id(), "type": event.type, "created": created, "data": data}, indent=2
        ).encode()
        t = timestamp if timestamp is not None else int(time.time())
        keys = [_secret(s) for s in secrets] if secrets is not None else self._secrets()[:1]
        if not keys:
            raise GatewayConfigError("the mock gateway has no webhook_secret to sign with")
        signatures = ",".join(f"v1={hmac_sha256_hex(key, _signed_payload(t, body))}" for key in keys)
        return {SIGNATURE_HEADER: f"t={t},{signatures}", "Content-Type": "application/json"}, body

    async def send_webhook(self, event: MockWebhook, *, url: str | None = None) -> httpx.Response:
        """Post a signed notification to `url` (default `webhook_url`), as the provider would."""
        target = url or self._settings.webhook_url
        if not target:
            raise GatewayConfigError("the mock gateway has no webhook_url to send to")
        headers, body = self.build_webhook(event)
        async with httpx.AsyncClient(timeout=10.0) as client:
            return await client.post(target, content=body, headers=headers)

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[GatewayEvent]:
        secrets = self._secrets()
        if not secrets:
            raise GatewayConfigError("the mock gateway has no webhook_secret to verify with")
        header = next((v for k, v in headers.items() if k.lower() == SIGNATURE_HEADER.lower()), None)
        if header is None:
            raise WebhookVerificationError(f"missing {SIGNATURE_HEADER} header")
        timestamp, signatures = _parse_signature_header(header)
        # Bounded both ways: a timestamp from the future is as suspicious as a replayed old one.
        if abs(time.time() - timestamp) > self._settings.webhook_tolerance_seconds:
            raise WebhookVerificationError("timestamp outside the tolerance window")
        payload = _signed_payload(timestamp, body)
        expected = [hmac_sha256_hex(secret, payload) for secret in secrets]
        # Check every pair, so the time taken does not tell which candidate came close.
        matches = [constant_time_equals(e, s) for e in expected for s in signatures]
        if not any(matches):
            raise WebhookVerificationError("no signature matches")
        return [self._event(body)]

    # -- saved customers and payment methods --------------------------------------------------

    async def create_customer(self, *, email: str | None, name: str | None, idempotency_key: str) -> Customer:
        await self._latency()
        customer_id = "cus_mock_" + _digest(idempotency_key)
        return self._customers.setdefault(customer_id, Customer(id=customer_id, email=email, name=name))

    async def attach_payment_method(self, *, customer_id: str, payment_method: str) -> SavedPaymentMethod:
        await self._latency()
        if customer_id not in self._customers:
            raise GatewayInvalidRequest(f"no such customer {customer_id!r}", code="resource_missing")
        token = parse_token(payment_method)
        if token is None:
            raise GatewayInvalidRequest("unknown test payment method token", code="resource_missing")
        pm_id = "pm_mock_" + _digest(customer_id, token.name)
        saved = SavedPaymentMethod(id=pm_id, type="card", brand=token.brand, last4=token.last4)
        self._saved[pm_id] = (customer_id, token, saved)
        return saved

    async def list_payment_methods(self, *, customer_id: str) -> list[SavedPaymentMethod]:
        await self._latency()
        if customer_id not in self._customers:
            raise GatewayInvalidRequest(f"no such customer {customer_id!r}", code="resource_missing")
        return [saved for owner, _, saved in self._saved.values() if owner == customer_id]

    async def detach_payment_method(self, *, payment_method: str) -> SavedPaymentMethod:
        await self._latency()
        if payment_method not in self._saved:
            raise GatewayInvalidRequest("no such saved payment method", code="resource_missing")
        return self._saved.pop(payment_method)[2]

    # -- internals ----------------------------------------------------------------------------

    async def _latency(self) -> None:
        if self._settings.latency_ms:
            await asyncio.sleep(self._settings.latency_ms / 1000)

    def _keyed(self, key: str, call: Contract, token: _Token, run: Callable[[], R]) -> R:
        """Run a state-changing call once per idempotency key, with the token's injected faults."""
        replayed = self._replay(key, call)
        if replayed is not None:
            return replayed
        return self._execute(key, call, token, run)

    def _replay(self, key: str, call: Contract) -> R | None:
        """The first answer given under `key`, as Stripe replays it; the key with other
        parameters is a caller's bug."""
        stored = self._replies.get(key)
        if stored is None:
            return None
        if stored[0] != _fingerprint(call):
            raise GatewayInvalidRequest(
                "idempotency key reused with different parameters", code="idempotency_key_reused"
            )
        return stored[1].model_copy(deep=True)  # type: ignore[return-value]

    def _execute(self, key: str, call: Contract, token: _Token, run: Callable[[], R]) -> R:
        self._attempts[key] += 1
        attempt = self._attempts[key]
        if token.behaviour == _Behaviour.TRANSIENT and attempt <= token.failures:
            raise GatewayTransientError(f"mock: simulated outage {attempt}/{token.failures}")
        if token.behaviour == _Behaviour.RATE_LIMITED and attempt <= token.failures:
            raise GatewayRateLimited(
                f"mock: simulated rate limit {attempt}/{token.failures}",
                retry_after=self._settings.retry_after_seconds,
            )
        result = run()
        self._replies[key] = (_fingerprint(call), result)
        if token.behaviour == _Behaviour.TIMEOUT and attempt == 1:
            raise GatewayOutcomeUnknown("mock: the response was lost after the provider acted")
        # The caller gets a copy: the stored reply must stay as first given for later replays.
        return cast(R, result.model_copy(deep=True))

    def _check_authorize(self, call: AuthorizeCall) -> _Token:
        if call.amount.currency not in self._profile.currencies:
            raise GatewayInvalidRequest(
                f"currency {call.amount.currency} is not enabled on the mock gateway",
                code="currency_not_supported",
            )
        if not self._profile.min_minor <= call.amount.minor <= self._profile.max_minor:
            raise GatewayInvalidRequest(
                f"amount {call.amount.minor} outside {self._profile.min_minor}..{self._profile.max_minor}",
                code="amount_out_of_range",
            )
        kind = _method_kind(call.method)
        if kind not in self._profile.methods:
            raise GatewayInvalidRequest(
                f"payment method {kind} is not enabled", code="payment_method_not_supported"
            )
        raw = getattr(call.method, "token", None)  # every method the settings allow has one
        if raw and raw in self._saved:
            return self._saved[raw][1]
        token = parse_token(raw) if raw else None
        if token is None:
            raise GatewayInvalidRequest("unknown test payment method token", code="resource_missing")
        return token

    def _find(self, payment_id: str, provider_payment_id: str | None) -> _Charge | None:
        provider_id = provider_payment_id or self._latest_charge.get(payment_id)
        return self._charges.get(provider_id) if provider_id else None

    def _require(self, payment_id: str, provider_payment_id: str | None) -> _Charge:
        charge = self._find(payment_id, provider_payment_id)
        if charge is None:
            raise GatewayInvalidRequest(f"no such payment {payment_id!r}", code="resource_missing")
        return charge

    @staticmethod
    def _same_currency(charge: _Charge, amount: Amount) -> None:
        if amount.currency != charge.amount.currency:
            raise GatewayInvalidRequest(
                f"amount in {amount.currency}, payment in {charge.amount.currency}", code="currency_mismatch"
            )

    def _secrets(self) -> list[str]:
        current = [self._settings.webhook_secret] if self._settings.webhook_secret else []
        return [s.get_secret_value() for s in current + self._settings.previous_webhook_secrets]

    def _event(self, body: bytes) -> GatewayEvent:
        """The verified body, normalized. A signed but malformed body is still refused."""
        try:
            payload = json.loads(body)
            data = payload["data"]
            amount = None
            if data.get("amount_minor") is not None and data.get("currency"):
                amount = Amount(minor=data["amount_minor"], currency=data["currency"])
            failure = None
            if data.get("failure_code"):
                failure = Failure(
                    code=data["failure_code"],
                    message=data.get("failure_message") or data["failure_code"],
                    decline_code=data.get("decline_code"),
                )
            provider_type = payload["type"]
            known = {k.value for k in GatewayEventKind} - {GatewayEventKind.UNKNOWN.value}
            return GatewayEvent(
                gateway=self.id,
                event_id=payload["id"],
                kind=GatewayEventKind(provider_type) if provider_type in known else GatewayEventKind.UNKNOWN,
                provider_type=provider_type,
                payment_id=data.get("payment_id"),
                provider_payment_id=data.get("provider_payment_id"),
                amount=amount,
                refund_id=data.get("refund_id"),
                provider_refund_id=data.get("provider_refund_id"),
                dispute_id=data.get("dispute_id"),
                dispute_status=data.get("dispute_status"),
                dispute_reason=data.get("dispute_reason"),
                failure=failure,
                occurred_at=datetime.fromtimestamp(payload["created"], UTC),
            )
        except (ValueError, KeyError, TypeError, AttributeError, OverflowError, ValidationError) as exc:
            raise WebhookVerificationError(f"malformed notification body ({type(exc).__name__})") from None


def _method_kind(method: PaymentMethod) -> str:
    """The `GatewayProfile.methods` entry a method is checked against."""
    return f"wallet:{method.wallet}" if isinstance(method, WalletMethod) else method.type


def _parse_signature_header(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            continue
        if key == "t" and value.isascii() and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            signatures.append(value)
        # other schemes (Stripe's v0) are ignored, never trusted
    if timestamp is None or not signatures:
        raise WebhookVerificationError(f"malformed {SIGNATURE_HEADER} header")
    return timestamp, signatures


def _fingerprint(call: Contract) -> str:
    return call.model_dump_json(exclude={"idempotency_key"})


def _signed_payload(timestamp: int, body: bytes) -> bytes:
    return f"{timestamp}.".encode() + body


def _secret(value: SecretStr | str) -> str:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def _digest(*parts: str | None) -> str:
    """A stable short id from its inputs: the same call always names the same object."""
    return hashlib.sha256("\x1f".join(p or "" for p in parts).encode()).hexdigest()[:24]
