"""The customer activities: a gateway-side customer for ours, a payment method saved for it, detached.

Gateway errors become Temporal retry behaviour exactly as for payments
(`activities.gateway_activities.to_application_error`): a gateway that keeps no customers raises
`NotSupported`, which comes back as a non-retryable `NotSupported` error the API answers 422 with.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.gateway_activities import to_application_error
from activities.gateways.base import GatewayError
from activities.gateways.registry import GatewayRegistry
from activities.store.customers import CustomerStore
from workflows import activity_names as names
from workflows.customer_io import (
    AttachMethodCall,
    DetachMethodRequest,
    GatewayCustomerCall,
    SavedMethodRecord,
)

T = TypeVar("T")


async def _gateway(call: Awaitable[T]) -> T:
    try:
        return await call
    except GatewayError as exc:
        # `from None`: the cause chain (HTTP client errors) would land in the workflow history.
        raise to_application_error(exc) from None


class CustomerActivities:
    def __init__(self, store: CustomerStore, registry: GatewayRegistry) -> None:
        self._store = store
        self._registry = registry

    @activity.defn(name=names.ENSURE_GATEWAY_CUSTOMER)
    async def ensure_gateway_customer(self, call: GatewayCustomerCall) -> str:
        known = await self._store.provider_customer(call.customer_id, call.gateway)
        if known is not None:
            return known
        gateway = self._registry.get(call.gateway)
        created = await _gateway(
            gateway.create_customer(email=call.email, name=call.name, idempotency_key=call.idempotency_key)
        )
        return await self._store.record_provider_customer(call.customer_id, call.gateway, created.id)

    @activity.defn(name=names.ATTACH_PAYMENT_METHOD)
    async def attach_payment_method(self, call: AttachMethodCall) -> SavedMethodRecord:
        request = call.request
        known = await self._store.get_method(request.method_id)
        if known is not None:
            return known  # a retry after the record was written
        gateway = self._registry.get(request.gateway)
        saved = await _gateway(
            gateway.attach_payment_method(customer_id=call.provider_customer_id, payment_method=request.token)
        )
        return await self._store.save_method(
            SavedMethodRecord(
                id=request.method_id,
                merchant_id=request.merchant_id,
                customer_id=request.customer_id,
                gateway=request.gateway,
                provider_method_id=saved.id,
                type=saved.type,
                brand=saved.brand,
                last4=saved.last4,
                exp_month=saved.exp_month,
                exp_year=saved.exp_year,
                created_at=datetime.now(UTC),
            )
        )

    @activity.defn(name=names.DETACH_PAYMENT_METHOD)
    async def detach_payment_method(self, request: DetachMethodRequest) -> SavedMethodRecord:
        method = await self._store.get_method(request.method_id)
        if method is None:
            raise ApplicationError(f"no saved payment method {request.method_id}", non_retryable=True)
        if method.detached_at is None:
            gateway = self._registry.get(method.gateway)
            await _gateway(gateway.detach_payment_method(payment_method=method.provider_method_id))
            method = await self._store.mark_detached(method.id, datetime.now(UTC)) or method
        return method

    def definitions(self) -> list[Callable[..., Any]]:
        return [self.ensure_gateway_customer, self.attach_payment_method, self.detach_payment_method]
