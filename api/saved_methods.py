"""A payment made with a saved method (`"payment_method": {"type": "saved", "id": "spm_..."}`): the
method becomes the card it stands for, on the gateway it was saved at, for the customer it was saved
for; the gateway is handed its own customer too, without which it will not charge the method.
"""

from __future__ import annotations

from api.ports import ApiDeps
from api.problems import field_error, validation_problem
from api.schemas import CreatePayment, SavedMethodRef
from workflows.domain import CardMethod


def _refused(pointer: str, message: str) -> Exception:
    return validation_problem([field_error(pointer, message)])


async def resolve_saved_method(
    deps: ApiDeps, merchant_id: str, body: CreatePayment
) -> tuple[CreatePayment, str | None]:
    """`body` with a saved method replaced by its card, and the gateway's customer id (None when
    the body names no saved method). 422 when the method is not the merchant's, is detached, or
    belongs to another gateway or customer than the body names."""
    ref = body.payment_method
    if not isinstance(ref, SavedMethodRef):
        return body, None
    method = await deps.customers.get_method(ref.id) if deps.customers is not None else None
    if method is None or method.merchant_id != merchant_id:
        # Another merchant's method reads exactly like none at all.
        raise _refused("/payment_method/id", f"no saved payment method {ref.id}")
    if method.detached_at is not None:
        raise _refused("/payment_method/id", f"saved payment method {ref.id} was detached")
    if body.gateway is not None and body.gateway != method.gateway:
        raise _refused(
            "/gateway",
            f"gateway {body.gateway!r} cannot charge saved payment method {ref.id}: it was saved at "
            f"{method.gateway!r}, and a saved method is only usable at its own gateway",
        )
    if body.customer_id is not None and body.customer_id != method.customer_id:
        raise _refused("/customer_id", f"saved payment method {ref.id} belongs to another customer")
    assert deps.customers is not None
    provider_customer_id = await deps.customers.provider_customer(method.customer_id, method.gateway)
    card = CardMethod(
        token=method.provider_method_id,
        brand=method.brand,
        last4=method.last4,
        exp_month=method.exp_month,
        exp_year=method.exp_year,
    )
    resolved = body.model_copy(
        update={"payment_method": card, "gateway": method.gateway, "customer_id": method.customer_id}
    )
    return resolved, provider_customer_id
