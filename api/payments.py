"""Merchant API handlers: `/v1/payments...`.

Every POST needs an `Idempotency-Key`. The payment id is derived from it and the merchant's id, so a
retried create lands on the same workflow, whichever of the merchant's keys sends it; the request
fingerprint lets the workflow tell a replay from a key reused for another request. Capture and cancel use the key as the Temporal update id, and
refund ids are derived from it, so retrying any of them never does the work twice.

Status codes of `POST /v1/payments`: 201 paid/authorized, 202 waiting for the customer (next_action)
or the provider, 402 failed (the payment, with its failure), 409 the order refused the payment,
200 a replay of a payment that has since moved on (cancelled, refunded, disputed). A replay of an
unchanged payment answers exactly what the first call answered.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
from collections.abc import Iterator
from decimal import Decimal
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails
from temporalio.client import WorkflowUpdateFailedError

from api.auth import API_KEY_ID, CALLER, DEFAULT_MERCHANT, Caller, Scope, requires
from api.ports import ApiDeps, MerchantSettings
from api.problems import (
    Problem,
    field_error,
    problem_for_update_failure,
    rate_limited,
    temporal_unavailable,
    validation_problem,
)
from api.responses import json_response
from api.saved_methods import resolve_saved_method
from api.schemas import (
    CancelPayment,
    CapturePayment,
    CompleteAction,
    CreatePayment,
    CreateRefund,
    PaymentOut,
    RefundOut,
    SavedMethodRef,
    find_card_data,
    mask_card_numbers,
)
from workflows.client import PaymentNotRunning
from workflows.domain import (
    CaptureMethod,
    GatewayProfile,
    PaymentInput,
    PaymentStatus,
    PaymentView,
    RefundStatus,
    RoutingRequest,
)
from workflows.messages import ActionCompleted, CancelRequest, CaptureRequest, RefundRequest
from workflows.money import MoneyError, to_minor
from workflows.validation import validate_payment

log = logging.getLogger("durapay.api")

DEPS = web.AppKey("deps", ApiDeps)

IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_IDEMPOTENCY_KEY = 255
PAYMENT_ID_PATTERN = r"pay_[a-z2-7]{26}"

# Refusals of the order ledger: the request is fine, the order is not (409, not 402).
ORDER_REFUSALS = frozenset({"order_amount_mismatch", "order_payment_in_flight", "order_already_paid"})

# Which request field a `validate_payment` failure is about.
_PROFILE_FAILURE_POINTERS = {
    "invalid_amount": "/amount",
    "currency_not_supported": "/currency",
    "payment_method_not_supported": "/payment_method",
    "amount_too_small": "/amount",
    "amount_too_large": "/amount",
    "manual_capture_not_supported": "/capture_method",
}

_ACTION_POLL_S = 0.1

Model = TypeVar("Model", bound=BaseModel)


# ---------------------------------------------------------------------------------------------
# Identity
# ---------------------------------------------------------------------------------------------


def _b32(text: str) -> str:
    digest = hashlib.sha256(text.encode()).digest()
    return base64.b32encode(digest).decode().lower()[:26]


def derive_payment_id(merchant_id: str, idempotency_key: str) -> str:
    # "/" is in no API key id, so no text hashed here is ever one `legacy_payment_id` hashed.
    return "pay_" + _b32(f"merchant/{merchant_id}:{idempotency_key}")


def legacy_payment_id(api_key_id: str, idempotency_key: str) -> str:
    """The id payments had before merchants, scoped per API key rather than per merchant."""
    return "pay_" + _b32(f"{api_key_id}:{idempotency_key}")


def derive_refund_id(payment_id: str, idempotency_key: str) -> str:
    return "re_" + _b32(f"{payment_id}:{idempotency_key}")


def fingerprint(request: BaseModel) -> str:
    canonical = json.dumps(request.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _update_token(api_key_id: str, idempotency_key: str) -> str:
    # Scoped by key id so that two API keys sending the same key are two updates (the workflow
    # client scopes it by operation: capture and then cancel with one key are two updates too).
    # Hashed: an update id is kept in the workflow's history and shown in its UI, and the key is
    # whatever text the caller chose. Still per API key, not per merchant: the path already fixes
    # the payment (hence the merchant), and a capture retried across the upgrade to merchants
    # keeps its update id.
    return _b32(f"{api_key_id}:{idempotency_key}")


# ---------------------------------------------------------------------------------------------
# Request parsing
# ---------------------------------------------------------------------------------------------


def idempotency_key(request: web.Request) -> str:
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None or not key.strip():
        raise Problem(
            400,
            "idempotency_key_required",
            "Idempotency-Key header required",
            "Every POST needs an Idempotency-Key header (1 to 255 characters), unique per operation; "
            "send the same key again to retry safely.",
        )
    if len(key) > MAX_IDEMPOTENCY_KEY:
        raise Problem(
            400,
            "idempotency_key_invalid",
            "Idempotency-Key too long",
            f"Idempotency-Key is {len(key)} characters; at most {MAX_IDEMPOTENCY_KEY} are allowed.",
        )
    return key


def _pointer(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for index, segment in enumerate(loc):
        text = str(segment)
        if text == "[key]":
            continue  # pydantic's marker for "the key itself" of a dict entry
        # A discriminated union puts the tag in the location ("payment_method", "card", "token");
        # the JSON document has no such level.
        if (
            index == 1
            and loc[0] == "payment_method"
            and text in ("card", "bank_transfer", "wallet", "bnpl", "saved")
        ):
            continue
        parts.append(text.replace("~", "~0").replace("/", "~1"))
    return "/" + "/".join(parts)


def _message(error: ErrorDetails) -> str:
    message = error["msg"]
    return message.removeprefix("Value error, ")


def problem_from_validation(exc: ValidationError) -> Problem:
    errors = [
        field_error(_pointer(error["loc"]), _message(error))
        for error in exc.errors(include_url=False, include_input=False, include_context=False)
    ]
    return validation_problem(errors)


async def read_json(request: web.Request, model: type[Model], *, body_optional: bool = False) -> Model:
    """The body validated as `model`; card data is refused before anything else looks at it."""
    raw = await request.read()
    if not raw.strip():
        if body_optional:
            return model()
        raise Problem(400, "body_required", "Request body required", "Send a JSON object body.")
    if request.content_type not in (
        "application/json",
        "application/octet-stream",
    ) and not request.content_type.endswith("+json"):
        # application/octet-stream is what aiohttp reports when no Content-Type was sent at all.
        raise Problem(415, "unsupported_media_type", "Unsupported media type", "Send application/json.")
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise Problem(400, "invalid_json", "Malformed JSON", "The request body is not valid JSON.") from None
    if not isinstance(document, dict):
        raise validation_problem([field_error("", "the body must be a JSON object")])
    pointers = list(find_card_data(document))
    if pointers:
        # The pointers locate the offending fields; the values themselves are never repeated.
        log.warning(
            "refused raw card data on %s %s at %s", request.method, mask_card_numbers(request.path), pointers
        )
        raise card_data_problem(pointers)
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        raise problem_from_validation(exc) from None


def card_data_problem(pointers: list[str]) -> Problem:
    return Problem(
        422,
        "card_data_not_allowed",
        "Raw card data is not accepted",
        "durapay never handles card numbers or security codes: tokenize the card with your "
        "gateway's client SDK and send the token as payment_method.token.",
        errors=[field_error(pointer, "card number or security code not allowed") for pointer in pointers],
    )


def _minor_of(amount: Decimal, currency: str) -> int:
    """An optional body amount (capture, refund) in the payment's currency; only now is the
    currency known, so only now can excess precision be refused."""
    try:
        return to_minor(amount, currency)
    except MoneyError as exc:
        raise validation_problem([field_error("/amount", str(exc))]) from None


# ---------------------------------------------------------------------------------------------
# Workflow access
# ---------------------------------------------------------------------------------------------


def _payment_id(request: web.Request) -> str:
    return request.match_info["payment_id"]


def _owned(view: PaymentView | None, merchant_id: str) -> PaymentView | None:
    """Another merchant's payment is no payment at all to this caller (404, not 403: its
    existence is not theirs to learn)."""
    return view if view is not None and view.merchant_id == merchant_id else None


async def _query_view(deps: ApiDeps, payment_id: str, merchant_id: str) -> PaymentView | None:
    try:
        return _owned(await deps.workflows.view(payment_id), merchant_id)
    except PaymentNotRunning:
        return None


async def current_view(deps: ApiDeps, payment_id: str, merchant_id: str) -> PaymentView | None:
    """The store's projection first (cheap, survives workflow retention); the workflow itself when
    the store has not caught up yet. Only the merchant's own payments."""
    view = await deps.payments.get(payment_id)
    if view is not None:
        return _owned(view, merchant_id)
    return await _query_view(deps, payment_id, merchant_id)


def _not_found(payment_id: str) -> Problem:
    return Problem(404, "payment_not_found", "Payment not found", f"No payment {payment_id}.")


async def require_view(deps: ApiDeps, payment_id: str, merchant_id: str) -> PaymentView:
    view = await current_view(deps, payment_id, merchant_id)
    if view is None:
        raise _not_found(payment_id)
    return view


# ---------------------------------------------------------------------------------------------
# POST /v1/payments
# ---------------------------------------------------------------------------------------------


def _capture_method(deps: ApiDeps, body: CreatePayment) -> CaptureMethod:
    return body.capture_method or deps.default_capture_method


def _check_profile(deps: ApiDeps, merchant_id: str, body: CreatePayment) -> GatewayProfile:
    merchant = deps.merchants.get(merchant_id, MerchantSettings())
    gateway_id = body.gateway or merchant.default_gateway or deps.default_gateway
    profile = deps.profiles.get(gateway_id)
    if profile is None:
        raise validation_problem([field_error("/gateway", f"unknown gateway {gateway_id!r}")])
    if merchant.allowed_gateways and gateway_id not in merchant.allowed_gateways:
        raise validation_problem(
            [field_error("/gateway", f"gateway {gateway_id!r} is not enabled for this merchant")]
        )
    if body.currency not in deps.supported_currencies:
        raise validation_problem([field_error("/currency", f"{body.currency} is not accepted here")])
    assert not isinstance(body.payment_method, SavedMethodRef)  # resolved by the caller
    failure = validate_payment(profile, body.money(), body.payment_method, _capture_method(deps, body))
    if failure is not None:
        raise validation_problem(
            [field_error(_PROFILE_FAILURE_POINTERS.get(failure.code, ""), failure.message)]
        )
    return profile


async def _replay_of_closed(deps: ApiDeps, payment_input: PaymentInput) -> PaymentView:
    """The key's workflow has closed: answer it as a replay. Its fingerprint is out of reach now,
    so at least the order and the amount must match, or the key was reused for another payment."""
    view = await require_view(deps, payment_input.payment_id, payment_input.merchant_id)
    if view.order_id != payment_input.order_id or view.amount != payment_input.amount:
        raise Problem(
            422,
            "idempotency_key_reused",
            "Idempotency-Key reused for a different request",
            "this Idempotency-Key was already used for a different payment",
        )
    return view


async def payment_id_for(
    deps: ApiDeps, caller: Caller, idempotency_key: str, payment_input: PaymentInput
) -> str:
    """The id of the payment this request makes or retries: `payment_input.payment_id` (derived
    from the merchant and the key), unless the key's payment is a legacy one; a new payment is
    counted against the attempt limits first.

    Payments made before merchants all belong to the `default` merchant and were keyed per API key
    (`legacy_payment_id`). A retry of one of them must land on its workflow, not start a second
    payment: a recorded payment under the legacy id wins, and one started but not yet recorded
    (its workers were down across the upgrade, say) is found by a describe of its workflow, after
    the attempt limits (which must refuse without touching Temporal). Other merchants never had
    legacy ids. One store read answers for both ids, and only when there is something to ask: a
    stored payment is a replay, neither a new attempt nor in need of the describe."""
    derived = payment_input.payment_id
    legacy = (
        legacy_payment_id(caller.key_id, idempotency_key) if caller.merchant_id == DEFAULT_MERCHANT else None
    )
    ids = [derived] if legacy is None else [legacy, derived]
    stored = (
        await deps.payments.recorded(ids) if legacy is not None or deps.rate_limiter is not None else set()
    )
    replayed = [payment_id for payment_id in ids if payment_id in stored]
    if replayed:
        return replayed[0]
    await limit_attempts(deps, payment_input)
    if legacy is not None and await deps.workflows.exists(legacy):
        return legacy
    return derived


async def limit_attempts(deps: ApiDeps, payment_input: PaymentInput) -> None:
    """Count a new payment (not a replay: see `payment_id_for`) against its order, its customer
    and the customer's IP address (each shared by every API instance through the limiter's
    database), in one round of writes; 429 once any is over its limit. The address is the one the
    merchant sent: the caller's own is its server, limited per API key."""
    if deps.rate_limiter is None:
        return
    # Order and customer ids are the merchant's own; an address is the same customer's anywhere.
    merchant = payment_input.merchant_id
    checks = [("order", f"{merchant}/{payment_input.order_id}", deps.limits.order_attempt_limit)]
    if payment_input.customer_id:
        checks.append(
            ("customer", f"{merchant}/{payment_input.customer_id}", deps.limits.customer_attempt_limit)
        )
    if payment_input.customer_ip:
        checks.append(("ip", payment_input.customer_ip, deps.limits.ip_attempt_limit))
    answers = await deps.rate_limiter.hit_many(
        [(f"attempts:{name}:{value}", limit.window_s, limit.limit) for name, value, limit in checks]
    )
    refused = [
        (retry_after, name, limit)
        for (name, _, limit), (allowed, retry_after) in zip(checks, answers, strict=True)
        if not allowed
    ]
    if refused:
        # The longest wait: retrying sooner would only be refused by that limit.
        retry_after, name, limit = max(refused, key=lambda refusal: refusal[0])
        log.warning("payment attempts over the limit per %s", ", ".join(r[1] for r in refused))
        raise rate_limited(
            "payment_attempts_exceeded",
            f"At most {limit.limit} payment attempts per {name} in {limit.window_s} s",
            retry_after,
            limit=name,
        )


def create_status(view: PaymentView) -> int:
    if view.status in (PaymentStatus.PAID, PaymentStatus.AUTHORIZED):
        return 201
    if view.status in (
        PaymentStatus.AUTHORIZING,
        PaymentStatus.PENDING,
        PaymentStatus.OUTCOME_UNKNOWN,
        PaymentStatus.REQUIRES_REVIEW,
    ):
        return 202
    if view.status is PaymentStatus.FAILED:
        return 402
    return 200


async def create_payment(request: web.Request) -> web.Response:
    deps = request.config_dict[DEPS]
    caller = request[CALLER]
    key = idempotency_key(request)
    requested = await read_json(request, CreatePayment)
    # A saved method becomes the card it stands for, on its gateway, with its customer.
    body, provider_customer_id = await resolve_saved_method(deps, caller.merchant_id, requested)
    assert not isinstance(body.payment_method, SavedMethodRef)
    profile = _check_profile(deps, caller.merchant_id, body)
    amount = body.money()
    settings = deps.settings_for(amount.currency)
    payment_input = PaymentInput(
        payment_id=derive_payment_id(caller.merchant_id, key),
        merchant_id=caller.merchant_id,
        provider_customer_id=provider_customer_id,
        order_id=body.order_id,
        gateway=profile,
        amount=amount,
        method=body.payment_method,
        capture_method=_capture_method(deps, body),
        customer_id=body.customer_id,
        customer_ip=str(body.customer_ip) if body.customer_ip else None,
        customer_email=body.customer_email,
        return_url=str(body.return_url) if body.return_url else None,
        description=body.description,
        metadata=body.metadata,
        request_fingerprint=fingerprint(requested),
        settings=settings,
        # No gateway named: the worker's routing rules may choose another (workflows/payment.py).
        routing=RoutingRequest(merchant=caller.merchant_id)
        if body.gateway is None and settings.routing_rules
        else None,
    )
    payment_id = await payment_id_for(deps, caller, key, payment_input)
    if payment_id != payment_input.payment_id:
        payment_input = payment_input.model_copy(update={"payment_id": payment_id})
    try:
        async with asyncio.timeout(deps.limits.decide_timeout_seconds):
            view = await deps.workflows.start_and_decide(payment_input, task_queue=deps.task_queue)
    except WorkflowUpdateFailedError as exc:
        raise problem_for_update_failure(exc) from None
    except PaymentNotRunning:
        view = await _replay_of_closed(deps, payment_input)
    except TimeoutError:
        # Not decided in time (a slow provider): the payment goes on; answer what we know and let
        # the merchant poll. Without a workflow to show, it is safe to retry with the same key.
        current = await current_view(deps, payment_id, caller.merchant_id)
        if current is None:
            raise temporal_unavailable() from None
        view = current
    log.info("payment %s order %s: %s", view.id, view.order_id, view.status.value)
    if view.status is PaymentStatus.FAILED and view.failure and view.failure.code in ORDER_REFUSALS:
        raise Problem(
            409,
            view.failure.code,
            "The order refuses this payment",
            view.failure.message,
            extra={"payment_id": view.id},
        )
    return json_response(PaymentOut.of(view), create_status(view))


# ---------------------------------------------------------------------------------------------
# Reads
# ---------------------------------------------------------------------------------------------


async def get_payment(request: web.Request) -> web.Response:
    deps = request.config_dict[DEPS]
    return json_response(
        PaymentOut.of(await require_view(deps, _payment_id(request), request[CALLER].merchant_id)), 200
    )


# ---------------------------------------------------------------------------------------------
# Updates and signals on an existing payment
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _update_problems(payment_id: str) -> Iterator[None]:
    try:
        yield
    except WorkflowUpdateFailedError as exc:
        raise problem_for_update_failure(exc) from None
    except PaymentNotRunning:  # gone since we read it: closed after its window
        raise Problem(
            409, "payment_closed", "The payment is closed", f"{payment_id} can no longer be changed."
        ) from None


async def capture_payment(request: web.Request) -> web.Response:
    deps = request.config_dict[DEPS]
    key = idempotency_key(request)
    body = await read_json(request, CapturePayment, body_optional=True)
    payment_id = _payment_id(request)
    view = await require_view(deps, payment_id, request[CALLER].merchant_id)
    amount_minor = _minor_of(body.amount, view.amount.currency) if body.amount is not None else None
    with _update_problems(payment_id):
        view = await deps.workflows.capture(
            payment_id,
            CaptureRequest(amount_minor=amount_minor),
            idempotency_token=_update_token(request[API_KEY_ID], key),
        )
    return json_response(PaymentOut.of(view), 200)


async def cancel_payment(request: web.Request) -> web.Response:
    deps = request.config_dict[DEPS]
    key = idempotency_key(request)
    body = await read_json(request, CancelPayment, body_optional=True)
    payment_id = _payment_id(request)
    await require_view(deps, payment_id, request[CALLER].merchant_id)
    with _update_problems(payment_id):
        view = await deps.workflows.cancel(
            payment_id,
            CancelRequest(reason=body.reason),
            idempotency_token=_update_token(request[API_KEY_ID], key),
        )
    return json_response(PaymentOut.of(view), 200)


async def create_refund(request: web.Request) -> web.Response:
    deps = request.config_dict[DEPS]
    key = idempotency_key(request)
    body = await read_json(request, CreateRefund, body_optional=True)
    payment_id = _payment_id(request)
    view = await require_view(deps, payment_id, request[CALLER].merchant_id)
    amount_minor = _minor_of(body.amount, view.amount.currency) if body.amount is not None else None
    refund_id = derive_refund_id(payment_id, key)
    with _update_problems(payment_id):
        refund_request = RefundRequest(refund_id=refund_id, amount_minor=amount_minor, reason=body.reason)
        try:
            refund = await deps.workflows.refund(payment_id, refund_request)
        except PaymentNotRunning:
            # Only a refund reopens a closed payment: a run started from the stored payment
            # (activities/reopen.py) takes it; without a reopener it stays 409 `payment_closed`.
            if deps.reopener is None or await deps.reopener.start(payment_id) is None:
                raise
            refund = await deps.workflows.refund(payment_id, refund_request)
    # 202 while the provider is still processing it; 201 once it has an outcome (see `status`).
    status = 202 if refund.status is RefundStatus.PENDING else 201
    return json_response(RefundOut.of(payment_id, refund), status)


async def complete_action(request: web.Request) -> web.Response:
    """The customer is back from 3-D Secure or a redirect. The signal is only a hint (the workflow
    asks the gateway), so wait briefly for the outcome to answer with it; 202 if it is not in yet."""
    deps = request.config_dict[DEPS]
    idempotency_key(request)  # required on every POST; the signal itself is harmless to repeat
    body = await read_json(request, CompleteAction, body_optional=True)
    payment_id = _payment_id(request)
    merchant_id = request[CALLER].merchant_id
    # The workflow, not the store: the store may not show `authorizing` yet right after the create
    # answered 202, and the signal must not be skipped for that.
    view = await _query_view(deps, payment_id, merchant_id)
    if view is None:
        return json_response(PaymentOut.of(await require_view(deps, payment_id, merchant_id)), 200)
    if view.status is not PaymentStatus.AUTHORIZING:
        return json_response(PaymentOut.of(view), 200)
    try:
        await deps.workflows.action_completed(payment_id, ActionCompleted(data=body.data))
    except PaymentNotRunning:  # closed between the query and the signal
        return json_response(PaymentOut.of(await require_view(deps, payment_id, merchant_id)), 200)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + deps.limits.action_complete_wait_seconds
    while True:
        polled = await _query_view(deps, payment_id, merchant_id)
        if polled is None:  # gone since the signal (retention): the store has the last word
            return json_response(PaymentOut.of(await require_view(deps, payment_id, merchant_id)), 200)
        view = polled
        if view.status is not PaymentStatus.AUTHORIZING or loop.time() >= deadline:
            break
        await asyncio.sleep(_ACTION_POLL_S)
    return json_response(PaymentOut.of(view), 202 if view.status is PaymentStatus.AUTHORIZING else 200)


def routes() -> web.RouteTableDef:
    table = web.RouteTableDef()
    write, read = requires(Scope.PAYMENTS_WRITE), requires(Scope.PAYMENTS_READ)
    one = f"/payments/{{payment_id:{PAYMENT_ID_PATTERN}}}"
    table.post("/payments")(write(create_payment))
    table.get(one, allow_head=False)(read(get_payment))
    table.post(f"{one}/capture")(write(capture_payment))
    table.post(f"{one}/cancel")(write(cancel_payment))
    table.post(f"{one}/refunds")(write(create_refund))
    table.post(f"{one}/actions/complete")(write(complete_action))
    return table
