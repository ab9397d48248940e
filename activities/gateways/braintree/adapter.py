"""Braintree, through the official `braintree` SDK.

The SDK is synchronous (`requests`): every call runs in this gateway's own bounded thread pool, off
the event loop, under the SDK's connect / read timeouts and an overall deadline here, so a stuck
provider can neither block the worker's loop nor take more than `max_threads` threads.

Braintree's XML gateway API has no idempotency key. Our payment id travels as the sale's
`order_id` (a refund's: `<payment id>/refund/<refund id>`), and every create first searches for
it: a retried activity whose first attempt reached Braintree (the answer was lost) finds that
transaction and answers it instead of charging again. The search costs one call per create;
without it, Braintree's own duplicate check (same amount, card and order id within 30 s, then a
"gateway rejected: duplicate") is all that would stand between a retry and a second charge.

3-D Secure happens in the customer's browser before the nonce reaches us; where we ask for it,
Braintree refuses a nonce without a successful authentication (a decline, nothing charged).

Left out on purpose: PayPal, Venmo, local payment methods and ACH (cards and vaulted cards only);
the GraphQL API (its at-most-once request keys would replace the search, but the SDK speaks XML);
multiple partial settlements (`submit_for_partial_settlement`); `transaction.adjust_authorization`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import braintree
from braintree.exceptions import (
    AuthenticationError,
    AuthorizationError,
    GatewayTimeoutError,
    NotFoundError,
    RequestTimeoutError,
    ServerError,
    ServiceUnavailableError,
    TooManyRequestsError,
    UpgradeRequiredError,
)
from braintree.exceptions.http import ConnectionError as SdkConnectionError
from braintree.exceptions.http.timeout_error import ConnectTimeoutError
from braintree.exceptions.http.timeout_error import TimeoutError as SdkTimeoutError
from braintree.exceptions.invalid_challenge_error import InvalidChallengeError

from activities.gateways.base import (
    Customer,
    Gateway,
    GatewayConfigError,
    GatewayError,
    GatewayInvalidRequest,
    GatewayOutcomeUnknown,
    GatewayRateLimited,
    GatewayTransientError,
    SavedPaymentMethod,
    WebhookAck,
    WebhookVerificationError,
)
from activities.gateways.braintree import GATEWAY_ID
from activities.gateways.braintree.settings import BraintreeSettings
from activities.gateways.braintree.transform import (
    REFUND_STANDING,
    VAULT_TOKEN_PREFIX,
    braintree_amount,
    rank,
    refund_order_id,
    refund_params,
    refund_result,
    sale_order_id,
    sale_params,
    saved_method,
    transaction_result,
)
from activities.gateways.braintree.webhooks import events_of, verified_notification
from workflows.domain import Failure, GatewayProfile, RefundStatus
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

T = TypeVar("T")

# Braintree's validation error codes this adapter acts on (braintree.ErrorCodes).
CANNOT_BE_VOIDED = "91504"
CANNOT_REFUND_UNLESS_SETTLED = "91506"
CANNOT_SUBMIT_FOR_SETTLEMENT = "91507"
CUSTOMER_ID_IN_USE = "91609"
CARD_TOKEN_IN_USE = "91719"
# Still on its way to settlement: a refund is refused until it settles, then allowed.
_SETTLING = frozenset({"submitted_for_settlement", "settlement_pending"})


def environment(settings: BraintreeSettings) -> braintree.Environment:
    """Braintree's sandbox or production, or a fake on this machine (plain HTTP, `api_base`)."""
    if settings.api_base is None:
        return braintree.Environment.parse_environment(settings.environment)
    host, _, port = settings.api_base.removeprefix("http://").rstrip("/").rpartition(":")
    return braintree.Environment("durapay-fake", host.strip("[]"), port, "", False, None)


def translate_error(exc: Exception, *, mutating: bool) -> GatewayError:
    """An SDK / transport failure -> the gateway error the activity layer understands.
    `mutating`: the request could have changed something at Braintree."""
    if isinstance(exc, TooManyRequestsError):
        return GatewayRateLimited("Braintree rate limit: too many requests")
    if isinstance(exc, AuthenticationError | AuthorizationError | UpgradeRequiredError):
        return GatewayConfigError(f"Braintree refused our credentials or API version ({type(exc).__name__})")
    if isinstance(exc, ConnectTimeoutError | ServiceUnavailableError):
        # Nothing was sent, or Braintree is down and did nothing.
        return GatewayTransientError(f"cannot reach Braintree ({type(exc).__name__})")
    unknown = (
        SdkTimeoutError,
        SdkConnectionError,
        ServerError,
        GatewayTimeoutError,
        RequestTimeoutError,
        TimeoutError,
    )
    if isinstance(exc, unknown):
        if mutating:
            return GatewayOutcomeUnknown(
                f"no answer from Braintree ({type(exc).__name__}); it may have acted"
            )
        return GatewayTransientError(f"Braintree did not answer ({type(exc).__name__})")
    if mutating:
        return GatewayOutcomeUnknown(f"Braintree call failed ({type(exc).__name__}); it may have acted")
    return GatewayTransientError(f"Braintree call failed ({type(exc).__name__})")


def error_codes(result: Any) -> set[str]:
    """The validation error codes of an unsuccessful SDK result."""
    errors = getattr(result, "errors", None)
    return {str(e.code) for e in errors.deep_errors} if errors is not None else set()


def _invalid(result: Any, what: str) -> GatewayInvalidRequest:
    codes = sorted(error_codes(result))
    return GatewayInvalidRequest(
        f"Braintree refused the {what}: {getattr(result, 'message', '')}",
        code=f"braintree_{codes[0]}" if codes else "invalid_request",
    )


def _stable_id(prefix: str, *parts: str) -> str:
    """An id Braintree lets us choose (customer id, vault token), derived from what names the
    operation, so a retry names the same object: the repeat is refused as "in use" and found."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:28]
    return f"{prefix}{digest}"


class BraintreeGateway(Gateway):
    def __init__(self, settings: BraintreeSettings, *, gateway_id: str = GATEWAY_ID) -> None:
        self._settings = settings
        self._profile = GatewayProfile(
            id=gateway_id,
            name="Braintree",
            methods=["card"],
            currencies=list(settings.currencies),
            min_minor=settings.min_minor,
            max_minor=settings.max_minor,
            supports_partial_capture=True,
            supports_manual_capture=True,
        )
        self._sdk = braintree.BraintreeGateway(
            braintree.Configuration(
                environment(settings),
                merchant_id=settings.merchant_id,
                public_key=settings.public_key,
                private_key=settings.private_key.get_secret_value(),
                timeout=(settings.connect_timeout_seconds, settings.timeout_seconds),
                wrap_http_exceptions=True,
            )
        )
        self._pool = ThreadPoolExecutor(max_workers=settings.max_threads, thread_name_prefix="braintree")
        # The thread keeps running past this; the SDK's own timeouts end it soon after.
        self._deadline = settings.connect_timeout_seconds + settings.timeout_seconds + 1.0

    def __repr__(self) -> str:
        return f"BraintreeGateway(id={self.id!r}, merchant_id={self._settings.merchant_id!r})"

    @property
    def profile(self) -> GatewayProfile:
        return self._profile

    @property
    def sdk(self) -> braintree.BraintreeGateway:
        """The SDK client (its webhook gateway answers Braintree's `bt_challenge`)."""
        return self._sdk

    # -- plumbing ---------------------------------------------------------------------------------

    async def _call(self, request: Callable[[], T], *, mutating: bool) -> T:
        """Run one blocking SDK call in the pool; transport failures leave as gateway errors.
        `NotFoundError` passes through for the callers that expect it."""
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(loop.run_in_executor(self._pool, request), self._deadline)
        except NotFoundError:
            raise
        except GatewayError:
            raise
        except Exception as exc:
            raise translate_error(exc, mutating=mutating) from exc

    async def _find(self, transaction_id: str) -> Any | None:
        try:
            return await self._call(lambda: self._sdk.transaction.find(transaction_id), mutating=False)
        except NotFoundError:
            return None

    async def _search(self, order_id: str, kind: str) -> list[Any]:
        """Our transactions under `order_id` of `kind` (sale / credit)."""

        def search() -> list[Any]:
            found = self._sdk.transaction.search(
                braintree.TransactionSearch.order_id == order_id,
                braintree.TransactionSearch.type == kind,
            )
            return list(found.items)

        return await self._call(search, mutating=False)

    async def _our_sale(self, payment_id: str) -> Any | None:
        sales = await self._search(sale_order_id(payment_id), braintree.Transaction.Type.Sale)
        return max(sales, key=rank) if sales else None

    async def _sale(self, payment_id: str, provider_payment_id: str | None) -> Any | None:
        if provider_payment_id:
            found = await self._find(provider_payment_id)
            if found is not None and found.order_id != sale_order_id(payment_id):
                raise GatewayInvalidRequest(
                    f"Braintree transaction {provider_payment_id} belongs to another payment",
                    code="payment_mismatch",
                )
            return found
        return await self._our_sale(payment_id)

    # -- payments ---------------------------------------------------------------------------------

    async def authorize(self, call: AuthorizeCall) -> GatewayResult:
        params = sale_params(call, self._settings)
        # No idempotency key at Braintree: a sale made by an earlier attempt is answered, not repeated.
        earlier = await self._our_sale(call.payment_id)
        if earlier is not None:
            return transaction_result(earlier)
        result = await self._call(lambda: self._sdk.transaction.sale(params), mutating=True)
        if result.is_success or getattr(result, "transaction", None) is not None:
            # Declines (processor declined, gateway rejected, 3-D Secure not passed) come back
            # unsuccessful but with the transaction: final answers, nothing charged.
            return transaction_result(result.transaction)
        raise _invalid(result, "sale")

    async def capture(self, call: CaptureCall) -> GatewayResult:
        amount = braintree_amount(call.amount, self._settings)
        sale = await self._sale(call.payment_id, call.provider_payment_id)
        if sale is None:
            return GatewayResult(status=GatewayPaymentStatus.NOT_FOUND)
        if sale.status != braintree.Transaction.Status.Authorized:
            return transaction_result(sale)  # captured already (a retry), voided or expired
        result = await self._call(
            lambda: self._sdk.transaction.submit_for_settlement(sale.id, amount), mutating=True
        )
        if result.is_success:
            return transaction_result(result.transaction)
        if CANNOT_SUBMIT_FOR_SETTLEMENT in error_codes(result):
            return await self._current(sale.id)
        raise _invalid(result, "capture")

    async def cancel(self, call: CancelCall) -> GatewayResult:
        sale = await self._sale(call.payment_id, call.provider_payment_id)
        if sale is None:
            return GatewayResult(status=GatewayPaymentStatus.NOT_FOUND)
        if sale.status != braintree.Transaction.Status.Authorized:
            # Only a hold is released. A sale already submitted for settlement could be voided
            # too, but that would undo a payment the workflow counts as paid: its state is the answer.
            return transaction_result(sale)
        result = await self._call(lambda: self._sdk.transaction.void(sale.id), mutating=True)
        if result.is_success:
            return transaction_result(result.transaction)
        if CANNOT_BE_VOIDED in error_codes(result):
            return await self._current(sale.id)
        raise _invalid(result, "void")

    async def _current(self, transaction_id: str) -> GatewayResult:
        found = await self._find(transaction_id)
        if found is None:
            return GatewayResult(status=GatewayPaymentStatus.NOT_FOUND)
        return transaction_result(found)

    async def lookup(self, call: LookupCall) -> GatewayResult:
        # `call.action_data` is never trusted: Braintree's transaction is the answer.
        sale = await self._sale(call.payment_id, call.provider_payment_id)
        if sale is None:
            return GatewayResult(status=GatewayPaymentStatus.NOT_FOUND)
        return transaction_result(sale)

    # -- refunds ----------------------------------------------------------------------------------

    async def refund(self, call: RefundCall) -> RefundResult:
        amount = braintree_amount(call.amount, self._settings)  # refused before anything is sent
        earlier = await self._our_refund(call.payment_id, call.refund_id)
        if earlier is not None:
            return refund_result(call.refund_id, earlier)
        sale = await self._sale(call.payment_id, call.provider_payment_id)
        if sale is None:
            raise GatewayInvalidRequest(f"no Braintree sale for {call.payment_id}", code="payment_not_found")
        params = refund_params(call.payment_id, call.refund_id, amount)
        result = await self._call(lambda: self._sdk.transaction.refund(sale.id, params), mutating=True)
        if result.is_success:
            return refund_result(call.refund_id, result.transaction)
        if CANNOT_REFUND_UNLESS_SETTLED in error_codes(result) and sale.status in _SETTLING:
            # Braintree refunds only settled sales; this one settles within the day: try again later.
            raise GatewayTransientError("the Braintree sale is not settled yet; its refund waits")
        raise _invalid(result, "refund")

    async def _our_refund(self, payment_id: str, refund_id: str) -> Any | None:
        refunds = await self._search(
            refund_order_id(payment_id, refund_id), braintree.Transaction.Type.Credit
        )
        standing = [r for r in refunds if r.status in REFUND_STANDING]
        return (standing or refunds or [None])[0]

    async def lookup_refund(self, call: RefundLookupCall) -> RefundResult:
        refund = await self._find(call.provider_refund_id) if call.provider_refund_id else None
        if refund is None:
            refund = await self._our_refund(call.payment_id, call.refund_id)
        if refund is None or refund.order_id != refund_order_id(call.payment_id, call.refund_id):
            return RefundResult(
                refund_id=call.refund_id,
                status=RefundStatus.FAILED,
                failure=Failure(code="refund_not_found", message="Braintree has no refund under this id"),
            )
        return refund_result(call.refund_id, refund)

    # -- customers and vaulted cards --------------------------------------------------------------

    async def create_customer(self, *, email: str | None, name: str | None, idempotency_key: str) -> Customer:
        customer_id = _stable_id("dpc_", idempotency_key)
        params = {
            "id": customer_id,
            **({"email": email} if email else {}),
            **({"first_name": name} if name else {}),
        }
        result = await self._call(lambda: self._sdk.customer.create(params), mutating=True)
        if result.is_success:
            customer = result.customer
        elif CUSTOMER_ID_IN_USE in error_codes(result):
            customer = await self._call(lambda: self._sdk.customer.find(customer_id), mutating=False)
        else:
            raise _invalid(result, "customer")
        return Customer(id=customer.id, email=customer.email, name=customer.first_name)

    async def attach_payment_method(self, *, customer_id: str, payment_method: str) -> SavedPaymentMethod:
        """Vault the card behind a nonce for the customer; its token pays later payments."""
        token = _stable_id(VAULT_TOKEN_PREFIX, customer_id, payment_method)
        params = {"customer_id": customer_id, "payment_method_nonce": payment_method, "token": token}
        result = await self._call(lambda: self._sdk.payment_method.create(params), mutating=True)
        if result.is_success:
            return saved_method(result.payment_method)
        if CARD_TOKEN_IN_USE in error_codes(result):  # vaulted by an earlier attempt
            found = await self._call(lambda: self._sdk.payment_method.find(token), mutating=False)
            if getattr(found, "customer_id", None) == customer_id:
                return saved_method(found)
        raise _invalid(result, "payment method")

    async def list_payment_methods(self, *, customer_id: str) -> list[SavedPaymentMethod]:
        try:
            customer = await self._call(lambda: self._sdk.customer.find(customer_id), mutating=False)
        except NotFoundError:
            raise GatewayInvalidRequest(
                f"no Braintree customer {customer_id}", code="customer_not_found"
            ) from None
        return [saved_method(card) for card in getattr(customer, "credit_cards", None) or []]

    async def detach_payment_method(self, *, payment_method: str) -> SavedPaymentMethod:
        try:
            found = await self._call(lambda: self._sdk.payment_method.find(payment_method), mutating=False)
        except NotFoundError:
            raise GatewayInvalidRequest("no such vaulted card", code="payment_method_not_found") from None
        with contextlib.suppress(NotFoundError):  # deleted by an earlier attempt
            await self._call(lambda: self._sdk.payment_method.delete(payment_method), mutating=True)
        return saved_method(found)

    # -- webhooks -----------------------------------------------------------------------------------

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[GatewayEvent]:
        # Verification is local (HMAC over the payload): no call to Braintree, no thread needed.
        return events_of(verified_notification(body, self._sdk), self.id)

    def answer_challenge(self, challenge: str) -> str:
        """The answer to Braintree's endpoint check (`bt_challenge`): `public_key|HMAC`."""
        return self._sdk.webhook_notification.verify(challenge)

    def webhook_challenge(self, query: Mapping[str, str]) -> WebhookAck | None:
        challenge = query.get("bt_challenge")
        if challenge is None:
            return None
        try:
            return WebhookAck(body=self.answer_challenge(challenge).encode())
        except InvalidChallengeError as exc:
            raise WebhookVerificationError("malformed bt_challenge") from exc

    async def aclose(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def build(settings: BraintreeSettings) -> BraintreeGateway:
    """The registry's factory."""
    return BraintreeGateway(settings)
