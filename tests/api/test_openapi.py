"""api/openapi.yaml is a valid OpenAPI 3.1 document and describes exactly the routes the app serves,
with the same request and response fields as the pydantic models."""

from __future__ import annotations

import re

import aiohttp
import pytest
from aiohttp import web
from openapi_spec_validator import validate

from api.app import create_app, load_openapi
from api.events import MerchantEventList, MerchantEventOut
from api.schemas import (
    AttachPaymentMethod,
    CancelPayment,
    CapturePayment,
    CompleteAction,
    CreateCustomer,
    CreatePayment,
    CreateRefund,
    CustomerOut,
    EventOut,
    FailureOut,
    PaymentList,
    PaymentOut,
    RefundOut,
    SavedMethodOut,
    SavedMethodRef,
)
from tests.api.fakes import make_deps, serve
from workflows.merchant_events import DeliveryAttempt, MerchantEventType

METHODS = {"get", "post", "put", "patch", "delete"}


def _app_routes(app: web.Application) -> set[tuple[str, str]]:
    routes: set[tuple[str, str]] = set()
    for resource in app.router.resources():
        if isinstance(resource, web.PrefixedSubAppResource):
            # a mounted sub-app's resources already carry the prefix in `canonical`
            routes |= _app_routes(resource._app)
            continue
        # "{payment_id:pay_...}" -> "{payment_id}", as OpenAPI writes path parameters
        path = re.sub(r"\{(\w+):[^}]*\}", r"{\1}", resource.canonical)
        for route in resource:
            routes.add((route.method.lower(), path))
    return routes


def _document_routes(document: dict) -> set[tuple[str, str]]:
    return {
        (method, path) for path, item in document["paths"].items() for method in item if method in METHODS
    }


def test_document_is_valid_openapi_3_1():
    document = load_openapi()
    assert document["openapi"] == "3.1.0"
    validate(document)


def test_every_route_is_documented_and_every_documented_route_exists():
    served = _app_routes(create_app(make_deps()))
    documented = _document_routes(load_openapi())
    assert served == documented
    assert ("post", "/webhooks/{gateway}") in served and ("post", "/v1/payments") in served


def test_public_routes_need_no_api_key_and_every_post_documents_idempotency():
    document = load_openapi()
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            public = operation.get("security") == []
            assert public == (not path.startswith("/v1/")), (method, path)
            if path.startswith("/v1/") and method == "post":
                refs = [p.get("$ref") for p in operation.get("parameters", [])]
                assert "#/components/parameters/IdempotencyKey" in refs, path


@pytest.mark.parametrize(
    ("schema", "model"),
    [
        ("CreatePayment", CreatePayment),
        ("CapturePayment", CapturePayment),
        ("CancelPayment", CancelPayment),
        ("CreateRefund", CreateRefund),
        ("CompleteAction", CompleteAction),
        ("Payment", PaymentOut),
        ("Refund", RefundOut),
        ("Failure", FailureOut),
        ("Event", MerchantEventOut),
        ("EventList", MerchantEventList),
        ("DeliveryAttempt", DeliveryAttempt),
        ("PaymentList", PaymentList),
        ("PaymentEvent", EventOut),
        ("CreateCustomer", CreateCustomer),
        ("Customer", CustomerOut),
        ("AttachPaymentMethod", AttachPaymentMethod),
        ("SavedPaymentMethod", SavedMethodOut),
        ("SavedMethodRef", SavedMethodRef),
    ],
)
def test_schemas_have_the_models_fields(schema, model):
    documented = load_openapi()["components"]["schemas"][schema]
    assert set(documented["properties"]) == set(model.model_fields)
    required = {name for name, f in model.model_fields.items() if f.is_required()}
    assert required <= set(documented.get("required", []))


async def test_document_is_served_as_json():
    async with serve(make_deps()) as base, aiohttp.ClientSession() as http:
        async with http.get(f"{base}/openapi.json") as resp:
            assert resp.status == 200
            assert await resp.json() == load_openapi()


def test_event_types_are_the_documented_ones():
    assert load_openapi()["components"]["schemas"]["EventType"]["enum"] == [
        t.value for t in MerchantEventType
    ]
