"""The one interface every provider adapter implements, and the errors they may raise.

Adapters return a `GatewayResult` for every business outcome, a decline included; they raise only
when the call itself went wrong, and then with one of the errors below, so that the activity layer
(`activities.gateway_activities`) maps them to Temporal retry behaviour in one place:

- `GatewayTransientError` / `GatewayRateLimited`: retried (after `retry_after` when given);
- `GatewayOutcomeUnknown`: the request may have reached the provider; retried with the same
  idempotency key, and the workflow resolves it by a lookup if retries run out;
- `GatewayInvalidRequest` / `GatewayConfigError`: final, never retried.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from workflows.domain import GatewayProfile
from workflows.gateway_io import (
    AuthorizeCall,
    CancelCall,
    CaptureCall,
    GatewayEvent,
    GatewayResult,
    LookupCall,
    RefundCall,
    RefundLookupCall,
    RefundResult,
)


class GatewayError(Exception):
    """Base of the errors an adapter raises; `code` is stable, `message` is safe to show."""

    code = "gateway_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class GatewayTransientError(GatewayError):
    code = "gateway_unavailable"


class GatewayRateLimited(GatewayTransientError):
    code = "gateway_rate_limited"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class GatewayOutcomeUnknown(GatewayTransientError):
    code = "gateway_outcome_unknown"


def required_field(answer: Mapping[str, Any], key: str, provider: str) -> str:
    """A member of a provider's answer the call cannot go on without: an answer lacking it says
    nothing sure about what happened."""
    value = answer.get(key)
    if not value:
        raise GatewayOutcomeUnknown(f"{provider} answered without {key}")
    return str(value)


class GatewayInvalidRequest(GatewayError):
    code = "gateway_invalid_request"


class GatewayConfigError(GatewayError):
    code = "gateway_misconfigured"


class WebhookVerificationError(Exception):
    """The notification's signature, timestamp or shape did not check out: answer 4xx, signal nothing."""


class NotSupported(GatewayError):
    code = "not_supported"


@dataclass(frozen=True)
class WebhookAck:
    """What to answer the provider once its notification is handled (providers differ)."""

    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain"


@dataclass(frozen=True)
class Customer:
    id: str
    email: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class SavedPaymentMethod:
    id: str
    type: str
    brand: str | None = None
    last4: str | None = None
    exp_month: int | None = None
    exp_year: int | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)


class Gateway(ABC):
    """A payment provider. Instances are shared by concurrent activities: keep them stateless
    beyond clients and configuration."""

    @property
    @abstractmethod
    def profile(self) -> GatewayProfile:
        """Id, name, methods, currencies and limits."""

    @property
    def id(self) -> str:
        return self.profile.id

    @abstractmethod
    async def authorize(self, call: AuthorizeCall) -> GatewayResult:
        """Authorize, or authorize and capture when `call.capture` (a sale)."""

    @abstractmethod
    async def capture(self, call: CaptureCall) -> GatewayResult: ...

    @abstractmethod
    async def cancel(self, call: CancelCall) -> GatewayResult:
        """Void an authorization / close an unpaid trade."""

    @abstractmethod
    async def lookup(self, call: LookupCall) -> GatewayResult:
        """The provider's current view of our payment, found by our own reference if need be."""

    @abstractmethod
    async def refund(self, call: RefundCall) -> RefundResult: ...

    @abstractmethod
    async def lookup_refund(self, call: RefundLookupCall) -> RefundResult: ...

    @abstractmethod
    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[GatewayEvent]:
        """Verify the raw notification and normalize it. Raises `WebhookVerificationError`."""

    async def receive_webhook(self, headers: Mapping[str, str], body: bytes) -> list[GatewayEvent]:
        """`parse_webhook` for a caller on an event loop (the webhook receiver). Checking a signature
        locally (an HMAC, an RSA verify) takes microseconds, so by default it runs inline: handing
        it to a thread would cost more than the check. A provider whose verification waits for
        I/O overrides this to await it, so that only its deliveries pay for the wait."""
        return self.parse_webhook(headers, body)

    def webhook_ack(self) -> WebhookAck:
        return WebhookAck()

    def webhook_challenge(self, query: Mapping[str, str]) -> WebhookAck | None:
        """The answer to a provider's check of the endpoint by GET (Braintree's `bt_challenge`);
        None: this provider sends none. Raises `WebhookVerificationError` for a malformed one."""
        return None

    def webhook_reject(self) -> WebhookAck | None:
        """What to answer a notification that did not verify, for a provider that expects its own
        format; None (the default) where any non-2xx will do: the receiver answers its problem
        document. Never says which check failed: that is logged, not told to the sender."""
        return None

    async def create_customer(self, *, email: str | None, name: str | None, idempotency_key: str) -> Customer:
        raise NotSupported(f"{self.id} does not keep customers")

    async def attach_payment_method(self, *, customer_id: str, payment_method: str) -> SavedPaymentMethod:
        raise NotSupported(f"{self.id} does not save payment methods")

    async def list_payment_methods(self, *, customer_id: str) -> list[SavedPaymentMethod]:
        raise NotSupported(f"{self.id} does not save payment methods")

    async def detach_payment_method(self, *, payment_method: str) -> SavedPaymentMethod:
        raise NotSupported(f"{self.id} does not save payment methods")

    async def aclose(self) -> None:  # noqa: B027 (optional hook: most adapters hold nothing to close)
        """Release clients (HTTP pools)."""
