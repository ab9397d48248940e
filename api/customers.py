"""Customers and their saved payment methods: `/v1/customers...`.

A customer is the merchant's: another merchant's key gets 404 for it and for its methods. Saving a
method spends a gateway token (Stripe `pm_...`, a mock `tok_...`) on the gateway's own customer,
which is created on first use per gateway; both happen in `SavePaymentMethodWorkflow`'s activities
under idempotency keys, so a retried request (same Idempotency-Key: same method id, same workflow)
never saves twice. Answers carry brand, last4 and expiry only, never a card number nor the token.
A gateway that keeps no customers (WeChat Pay, AliPay) is refused with 422 naming it.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from aiohttp import web
from temporalio.client import WorkflowFailureError
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, FailureError, WorkflowAlreadyStartedError

from api.auth import CALLER, Scope, requires
from api.payments import DEPS, _b32, idempotency_key, read_json
from api.ports import ApiDeps, CustomerDirectory, MerchantSettings
from api.problems import Problem, field_error, temporal_unavailable, validation_problem
from api.responses import json_response
from api.schemas import AttachPaymentMethod, CreateCustomer, CustomerOut, SavedMethodList, SavedMethodOut
from workflows.customer_io import CustomerRecord, DetachMethodRequest, SavedMethodRecord, SaveMethodRequest
from workflows.customers import (
    DetachPaymentMethodWorkflow,
    SavePaymentMethodWorkflow,
    detach_workflow_id,
    save_workflow_id,
)

CUSTOMER_ID_PATTERN = r"cust_[a-z2-7]{26}"
METHOD_ID_PATTERN = r"spm_[a-z2-7]{26}"


def _directory(deps: ApiDeps) -> CustomerDirectory:
    if deps.customers is None:
        raise Problem(404, "not_found", "Not found", "Customers are not enabled on this deployment.")
    return deps.customers


def _customer_not_found(customer_id: str) -> Problem:
    return Problem(404, "customer_not_found", "Customer not found", f"No customer {customer_id}.")


async def _own_customer(request: web.Request) -> CustomerRecord:
    customer_id = request.match_info["customer_id"]
    customer = await _directory(request.config_dict[DEPS]).get_customer(customer_id)
    if customer is None or customer.merchant_id != request[CALLER].merchant_id:
        raise _customer_not_found(customer_id)
    return customer


async def create_customer(request: web.Request) -> web.Response:
    deps = request.config_dict[DEPS]
    merchant_id = request[CALLER].merchant_id
    key = idempotency_key(request)
    body = await read_json(request, CreateCustomer, body_optional=True)
    wanted = CustomerRecord(
        id="cust_" + _b32(f"merchant/{merchant_id}:customer:{key}"),
        merchant_id=merchant_id,
        email=body.email,
        name=body.name,
        metadata=body.metadata,
        created_at=datetime.now(UTC),
    )
    stored = await _directory(deps).create_customer(wanted)
    if stored.model_dump(exclude={"created_at"}) != wanted.model_dump(exclude={"created_at"}):
        raise Problem(
            422,
            "idempotency_key_reused",
            "Idempotency-Key reused for a different request",
            "this Idempotency-Key was already used to create a different customer",
        )
    return json_response(CustomerOut.of(stored), 201 if stored.created_at == wanted.created_at else 200)


async def get_customer(request: web.Request) -> web.Response:
    return json_response(CustomerOut.of(await _own_customer(request)), 200)


def _gateway_for(deps: ApiDeps, merchant_id: str, requested: str | None) -> str:
    merchant = deps.merchants.get(merchant_id, MerchantSettings())
    gateway = requested or merchant.default_gateway or deps.default_gateway
    if deps.profiles.get(gateway) is None:
        raise validation_problem([field_error("/gateway", f"unknown gateway {gateway!r}")])
    if merchant.allowed_gateways and gateway not in merchant.allowed_gateways:
        raise validation_problem(
            [field_error("/gateway", f"gateway {gateway!r} is not enabled for this merchant")]
        )
    return gateway


def _refusal(exc: WorkflowFailureError, gateway: str) -> Problem:
    """The gateway's final answer as a problem; anything else is not the caller's to fix."""
    cause: BaseException | None = exc.cause
    while isinstance(cause, FailureError) and not isinstance(cause, ApplicationError):
        cause = cause.cause  # the activity's error, under the workflow's
    if isinstance(cause, ApplicationError) and cause.type == "NotSupported":
        return Problem(
            422,
            "saved_payment_methods_not_supported",
            "The gateway cannot save payment methods",
            f"gateway {gateway!r} cannot save payment methods; pay with a one-time method there.",
            extra={"gateway": gateway},
        )
    if isinstance(cause, ApplicationError) and cause.type == "GatewayInvalidRequest":
        return Problem(
            422,
            "payment_method_refused",
            "The gateway refused the payment method",
            f"gateway {gateway!r}: {cause.message}",
            extra={"gateway": gateway},
        )
    return Problem(
        502,
        "gateway_error",
        "The gateway did not complete the request",
        "Retry with the same Idempotency-Key.",
    )


async def _run(deps: ApiDeps, workflow, arg, workflow_id: str, gateway: str) -> SavedMethodRecord:
    """Run (or join, or read the outcome of) the workflow `workflow_id`."""
    try:
        async with asyncio.timeout(deps.limits.decide_timeout_seconds):
            try:
                return await deps.client.execute_workflow(
                    workflow,
                    arg,
                    id=workflow_id,
                    task_queue=deps.task_queue,
                    id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                    # Once it has run, its outcome is the answer to every retry: never run it again.
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                )
            except WorkflowAlreadyStartedError:
                return await deps.client.get_workflow_handle(workflow_id).result()
    except WorkflowFailureError as exc:
        raise _refusal(exc, gateway) from None
    except TimeoutError:
        raise temporal_unavailable() from None


async def attach_method(request: web.Request) -> web.Response:
    deps = request.config_dict[DEPS]
    key = idempotency_key(request)
    body = await read_json(request, AttachPaymentMethod)
    customer = await _own_customer(request)
    gateway = _gateway_for(deps, customer.merchant_id, body.gateway)
    method_id = "spm_" + _b32(f"{customer.id}:payment_method:{key}")
    known = await _directory(deps).get_method(method_id)
    if known is not None:
        return json_response(SavedMethodOut.of(known), 200)
    saved = await _run(
        deps,
        SavePaymentMethodWorkflow.run,
        SaveMethodRequest(
            method_id=method_id,
            merchant_id=customer.merchant_id,
            customer_id=customer.id,
            gateway=gateway,
            token=body.token,
            email=customer.email,
            name=customer.name,
        ),
        save_workflow_id(method_id),
        gateway,
    )
    return json_response(SavedMethodOut.of(saved), 201)


async def list_methods(request: web.Request) -> web.Response:
    deps = request.config_dict[DEPS]
    customer = await _own_customer(request)
    methods = await _directory(deps).list_methods(customer.id)
    return json_response(SavedMethodList(data=[SavedMethodOut.of(m) for m in methods]), 200)


async def detach_method(request: web.Request) -> web.Response:
    deps = request.config_dict[DEPS]
    customer = await _own_customer(request)
    method_id = request.match_info["method_id"]
    method = await _directory(deps).get_method(method_id)
    if method is None or method.customer_id != customer.id:
        raise Problem(
            404, "payment_method_not_found", "Payment method not found", f"No payment method {method_id}."
        )
    if method.detached_at is None:
        method = await _run(
            deps,
            DetachPaymentMethodWorkflow.run,
            DetachMethodRequest(method_id=method_id),
            detach_workflow_id(method_id),
            method.gateway,
        )
    return json_response(SavedMethodOut.of(method), 200)


def routes() -> web.RouteTableDef:
    table = web.RouteTableDef()
    write, read = requires(Scope.PAYMENTS_WRITE), requires(Scope.PAYMENTS_READ)
    one = f"/customers/{{customer_id:{CUSTOMER_ID_PATTERN}}}"
    table.post("/customers")(write(create_customer))
    table.get(one, allow_head=False)(read(get_customer))
    table.post(f"{one}/payment_methods")(write(attach_method))
    table.get(f"{one}/payment_methods", allow_head=False)(read(list_methods))
    table.delete(f"{one}/payment_methods/{{method_id:{METHOD_ID_PATTERN}}}")(write(detach_method))
    return table
