"""Merchants, scopes, customers and saved payment methods end to end: real HTTP into the real API, a
real worker on the Temporal dev server, the SQL store and the mock gateway.

Two merchants share the deployment: `default` (key `test`, and a read-only and a write-only key) and
`acme` (key `acme-1`). Whatever one merchant made, the other cannot see, touch, list or pay with:
every such request is a 404 (or, for a payment made with another merchant's saved method, the same
422 as for a method that does not exist), never a 403 that would tell it exists.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest_asyncio

from api.payments import derive_payment_id
from tests.e2e.helpers import eventually
from tests.stack import Stack, running_stack
from workers.temporal_binaries import temporal_cli
from workflows.client import workflow_id

PROBLEM = "application/problem+json"
KEYS = {name: secrets.token_urlsafe(24) for name in ("acme-1", "reader", "writer")}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stack(temporal_env, tmp_path_factory) -> AsyncIterator[Stack]:
    db = tmp_path_factory.mktemp("merchants") / "durapay.db"
    async with running_stack(
        temporal_env.client,
        task_queue=f"tq-merchants-{uuid.uuid4().hex[:8]}",
        db_url=f"sqlite+aiosqlite:///{db}",
        config_overrides={
            "api": {"api_keys": KEYS},
            "merchants": {"acme": {"api_keys": ["acme-1"], "allowed_gateways": ["mock"]}},
            "api_key_scopes": {"reader": ["payments:read"], "writer": ["payments:write"]},
        },
    ) as running:
        yield running


@pytest_asyncio.fixture
async def http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with stack.http() as client:
        yield client


def as_key(stack: Stack, key_id: str | None, idempotency_key: str | None = None) -> dict[str, str]:
    secret = stack.api_key if key_id is None else KEYS[key_id]
    headers = {"Authorization": f"Bearer {secret}"}
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    return headers


def payment(unique: str, **fields: Any) -> dict[str, Any]:
    return {
        "order_id": f"order-{unique}",
        "amount": "49.99",
        "currency": "USD",
        "payment_method": {"type": "card", "token": "tok_visa"},
        **fields,
    }


async def _customer_with_method(
    http: httpx.AsyncClient, stack: Stack, unique: str, key_id: str | None = None
):
    created = await http.post(
        "/v1/customers", json={"email": "ada@example.com"}, headers=as_key(stack, key_id, f"{unique}-cust")
    )
    assert created.status_code == 201, created.text
    customer = created.json()
    saved = await http.post(
        f"/v1/customers/{customer['id']}/payment_methods",
        json={"gateway": "mock", "token": "tok_mastercard"},
        headers=as_key(stack, key_id, f"{unique}-pm"),
    )
    assert saved.status_code == 201, saved.text
    return customer, saved.json()


async def test_another_merchants_objects_are_not_found_on_every_endpoint(
    http: httpx.AsyncClient, stack: Stack, unique: str
) -> None:
    # The default merchant's payment (manual capture: capture and cancel stay possible), customer
    # and saved method.
    made = await http.post(
        "/v1/payments", json=payment(unique, capture_method="manual"), headers=as_key(stack, None, unique)
    )
    assert made.status_code == 201, made.text
    payment_id = made.json()["id"]
    customer, method = await _customer_with_method(http, stack, unique)

    acme = as_key(stack, "acme-1")
    one = f"/v1/payments/{payment_id}"
    requests = [
        ("GET", one, None),
        ("GET", f"{one}/events", None),
        ("POST", f"{one}/capture", {}),
        ("POST", f"{one}/cancel", {}),
        ("POST", f"{one}/refunds", {}),
        ("POST", f"{one}/actions/complete", {}),
        ("GET", f"/v1/customers/{customer['id']}", None),
        ("GET", f"/v1/customers/{customer['id']}/payment_methods", None),
        ("POST", f"/v1/customers/{customer['id']}/payment_methods", {"token": "tok_visa"}),
        ("DELETE", f"/v1/customers/{customer['id']}/payment_methods/{method['id']}", None),
    ]
    for method_name, path, body in requests:
        response = await http.request(
            method_name,
            path,
            json=body,
            headers={**acme, "Idempotency-Key": f"{unique}-{method_name}-{path}"},
        )
        assert (response.status_code, response.headers["Content-Type"]) == (404, PROBLEM), (method_name, path)
        assert payment_id not in response.text or path.startswith(one)  # at most the id it was asked about

    # Lists: none of the default merchant's payments, by any filter; its cursor is no cursor here.
    # The create may answer before the gateway does (a busy machine): its provider id comes later.
    async def provider_payment_id() -> str | None:
        own = await http.get(f"/v1/payments/{payment_id}", headers=as_key(stack, None))
        return own.json()["provider_payment_id"]

    provider_id = await eventually(provider_payment_id)
    assert provider_id is not None
    for query in (
        {},
        {"order_id": f"order-{unique}"},
        {"provider_payment_id": provider_id},
    ):
        listed = await http.get("/v1/payments", params=query, headers=acme)
        assert listed.status_code == 200 and payment_id not in {p["id"] for p in listed.json()["data"]}
    cursor = await http.get("/v1/payments", params={"starting_after": payment_id}, headers=acme)
    assert (cursor.status_code, cursor.json()["code"]) == (400, "invalid_cursor")

    # Paying with the default merchant's saved method reads as a method that does not exist.
    stolen = await http.post(
        "/v1/payments",
        json=payment(f"{unique}-acme", payment_method={"type": "saved", "id": method["id"]}),
        headers={**acme, "Idempotency-Key": f"{unique}-stolen"},
    )
    assert stolen.status_code == 422 and f"no saved payment method {method['id']}" in stolen.text

    # The owner still has everything, untouched.
    own = await http.get(one, headers=as_key(stack, None))
    assert (own.status_code, own.json()["status"]) == (200, "authorized")
    methods = await http.get(f"/v1/customers/{customer['id']}/payment_methods", headers=as_key(stack, None))
    assert [m["id"] for m in methods.json()["data"]] == [method["id"]]


async def test_idempotency_keys_are_scoped_per_merchant(
    http: httpx.AsyncClient, stack: Stack, unique: str
) -> None:
    ours = await http.post("/v1/payments", json=payment(f"{unique}-a"), headers=as_key(stack, None, unique))
    theirs = await http.post(
        "/v1/payments", json=payment(f"{unique}-b"), headers=as_key(stack, "acme-1", unique)
    )
    assert ours.status_code == theirs.status_code == 201
    assert ours.json()["id"] == derive_payment_id("default", unique)
    assert theirs.json()["id"] == derive_payment_id("acme", unique) != ours.json()["id"]
    # A replay by the same merchant is the same payment.
    again = await http.post(
        "/v1/payments", json=payment(f"{unique}-b"), headers=as_key(stack, "acme-1", unique)
    )
    assert again.json()["id"] == theirs.json()["id"]
    # The merchant is a search attribute and in the workflow's summary.
    described = await stack.client.get_workflow_handle(workflow_id(theirs.json()["id"])).describe()
    assert "merchant acme" in (await described.static_summary() or "")


async def test_a_merchants_allowed_gateways_are_enforced(
    http: httpx.AsyncClient, stack: Stack, unique: str
) -> None:
    refused = await http.post(
        "/v1/payments", json=payment(unique, gateway="nowhere"), headers=as_key(stack, "acme-1", unique)
    )
    assert refused.status_code == 422 and refused.json()["errors"][0]["pointer"] == "/gateway"


async def test_scopes_are_enforced_with_403(http: httpx.AsyncClient, stack: Stack, unique: str) -> None:
    made = await http.post("/v1/payments", json=payment(unique), headers=as_key(stack, None, unique))
    payment_id = made.json()["id"]
    reader, writer = as_key(stack, "reader"), as_key(stack, "writer")
    # The reader reads (the same merchant: default) and writes nothing.
    assert (await http.get(f"/v1/payments/{payment_id}", headers=reader)).status_code == 200
    assert (await http.get("/v1/payments", headers=reader)).status_code == 200
    for path, body in (
        ("/v1/payments", payment(f"{unique}-r")),
        (f"/v1/payments/{payment_id}/refunds", {}),
        (f"/v1/payments/{payment_id}/cancel", {}),
        ("/v1/customers", {}),
    ):
        refused = await http.post(path, json=body, headers={**reader, "Idempotency-Key": f"{unique}-r"})
        assert (refused.status_code, refused.headers["Content-Type"]) == (403, PROBLEM), path
        assert (refused.json()["code"], refused.json()["required_scope"]) == (
            "insufficient_scope",
            "payments:write",
        )
    # The writer writes and reads nothing.
    for path in (f"/v1/payments/{payment_id}", "/v1/payments", f"/v1/payments/{payment_id}/events"):
        refused = await http.get(path, headers=writer)
        assert (refused.status_code, refused.json()["required_scope"]) == (403, "payments:read"), path
    # Idempotency-Keys are the merchant's, not the key's: the writer's key cannot reuse the one
    # another key of the same merchant spent on a different payment.
    reused = await http.post(
        "/v1/payments", json=payment(f"{unique}-w"), headers={**writer, "Idempotency-Key": unique}
    )
    assert (reused.status_code, reused.json()["code"]) == (422, "idempotency_key_reused")
    created = await http.post(
        "/v1/payments", json=payment(f"{unique}-w"), headers={**writer, "Idempotency-Key": f"{unique}-w"}
    )
    assert created.status_code == 201
    # Nothing refused changed anything: no payment for the reader's attempt.
    assert await stack.store.get(derive_payment_id("default", f"{unique}-r")) is None


async def test_saved_method_payment_on_the_mock_end_to_end(
    http: httpx.AsyncClient, stack: Stack, unique: str
) -> None:
    customer, method = await _customer_with_method(http, stack, unique, "acme-1")
    assert (method["brand"], method["last4"], method["gateway"]) == ("mastercard", "4444", "mock")
    assert set(method) == {
        "id", "object", "customer_id", "gateway", "type", "brand", "last4", "exp_month", "exp_year",
        "created_at", "detached",
    }  # fmt: skip
    # The saved-method workflow is done and the replay answers the same method.
    replay = await http.post(
        f"/v1/customers/{customer['id']}/payment_methods",
        json={"gateway": "mock", "token": "tok_mastercard"},
        headers=as_key(stack, "acme-1", f"{unique}-pm"),
    )
    assert (replay.status_code, replay.json()["id"]) == (200, method["id"])

    acme = as_key(stack, "acme-1")
    paid = await http.post(
        "/v1/payments",
        json=payment(unique, payment_method={"type": "saved", "id": method["id"]}),
        headers={**acme, "Idempotency-Key": f"{unique}-pay"},
    )
    assert paid.status_code == 201, paid.text
    view = paid.json()
    assert (view["status"], view["customer_id"], view["payment_method"]) == (
        "paid",
        customer["id"],
        {"type": "card", "brand": "mastercard", "last4": "4444"},
    )
    # Findable by its customer.
    by_customer = await http.get("/v1/payments", params={"customer_id": customer["id"]}, headers=acme)
    assert [p["id"] for p in by_customer.json()["data"]] == [view["id"]]
    events = await http.get(f"/v1/payments/{view['id']}/events", headers=acme)
    assert events.json()["data"][0]["type"] == "payment.created"

    # Detached: gone from the list, and no longer usable.
    detached = await http.delete(
        f"/v1/customers/{customer['id']}/payment_methods/{method['id']}", headers=acme
    )
    assert (detached.status_code, detached.json()["detached"]) == (200, True)
    assert (await http.get(f"/v1/customers/{customer['id']}/payment_methods", headers=acme)).json()[
        "data"
    ] == []
    refused = await http.post(
        "/v1/payments",
        json=payment(f"{unique}-2", payment_method={"type": "saved", "id": method["id"]}),
        headers={**acme, "Idempotency-Key": f"{unique}-pay-2"},
    )
    assert refused.status_code == 422 and "was detached" in refused.text


async def test_a_token_the_gateway_refuses_is_a_clear_422(
    http: httpx.AsyncClient, stack: Stack, unique: str
) -> None:
    created = await http.post("/v1/customers", json={}, headers=as_key(stack, None, unique))
    refused = await http.post(
        f"/v1/customers/{created.json()['id']}/payment_methods",
        json={"token": "tok_nosuchcard"},
        headers=as_key(stack, None, f"{unique}-pm"),
    )
    assert (refused.status_code, refused.json()["code"], refused.json()["gateway"]) == (
        422,
        "payment_method_refused",
        "mock",
    )


async def _cli_list(stack: Stack, query: str) -> list[dict[str, Any]]:
    address = stack.client.service_client.config.target_host
    process = await asyncio.create_subprocess_exec(
        temporal_cli(),
        "workflow",
        "list",
        "--address",
        address,
        "--namespace",
        stack.client.namespace,
        "--query",
        query,
        "--output",
        "json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    text = out.decode().strip()
    if not text:
        return []
    parsed = json.loads(text) if text.startswith("[") else [json.loads(line) for line in text.splitlines()]
    return parsed


async def test_the_temporal_cli_finds_a_payment_by_its_provider_id(
    http: httpx.AsyncClient, stack: Stack, unique: str
) -> None:
    made = await http.post(
        "/v1/payments",
        json=payment(unique, customer_id=f"cus-{unique}"),
        headers=as_key(stack, "acme-1", unique),
    )
    assert made.status_code == 201
    view = made.json()
    assert view["provider_payment_id"].startswith("pi_mock_")
    payment_workflow_id = workflow_id(view["id"])

    async def found(query: str) -> list[str] | None:
        ids = [w["execution"]["workflowId"] for w in await _cli_list(stack, query)]
        return ids or None  # visibility is eventually consistent: poll

    for query in (
        f"ProviderPaymentId='{view['provider_payment_id']}'",
        f"MerchantId='acme' AND CustomerId='cus-{unique}'",
    ):
        assert await eventually(lambda q=query: found(q)) == [payment_workflow_id], query


async def test_two_merchants_may_use_the_same_order_id(
    http: httpx.AsyncClient, stack: Stack, unique: str
) -> None:
    ours = await http.post("/v1/payments", json=payment(unique), headers=as_key(stack, None, f"{unique}-1"))
    theirs = await http.post(
        "/v1/payments", json=payment(unique, amount="5.00"), headers=as_key(stack, "acme-1", f"{unique}-2")
    )
    assert (ours.status_code, theirs.status_code) == (201, 201), theirs.text
    # Each merchant's order is paid once: a second payment for it is refused, at each merchant.
    again = await http.post(
        "/v1/payments", json=payment(unique, amount="5.00"), headers=as_key(stack, "acme-1", f"{unique}-3")
    )
    assert (again.status_code, again.json()["code"]) == (409, "order_already_paid")


async def test_merchant_events_are_the_merchants_own(
    http: httpx.AsyncClient, stack: Stack, unique: str
) -> None:
    """GET /v1/events lists only the caller's merchant's events; another's event is 404 to read or
    redeliver; reading needs payments:read, redelivering payments:write."""
    made = await http.post("/v1/payments", json=payment(unique), headers=as_key(stack, None, unique))
    assert made.status_code == 201, made.text
    payment_id = made.json()["id"]
    theirs = await http.post(
        "/v1/payments", json=payment(f"{unique}-acme"), headers=as_key(stack, "acme-1", f"{unique}-acme")
    )
    assert theirs.status_code == 201, theirs.text

    async def succeeded() -> list[dict[str, Any]] | None:
        listed = await http.get("/v1/events", params={"payment_id": payment_id}, headers=as_key(stack, None))
        assert listed.status_code == 200, listed.text
        events = listed.json()["data"]
        return events if "payment.succeeded" in {e["type"] for e in events} else None

    events = await eventually(succeeded)
    assert events is not None and {e["payment_id"] for e in events} == {payment_id}
    event_id = events[0]["id"]

    acme = as_key(stack, "acme-1")
    filtered = await http.get("/v1/events", params={"payment_id": payment_id}, headers=acme)
    assert (filtered.status_code, filtered.json()["data"]) == (200, [])
    everything = await http.get("/v1/events", params={"limit": 100}, headers=acme)
    assert payment_id not in {e["payment_id"] for e in everything.json()["data"]}
    assert (await http.get(f"/v1/events/{event_id}", headers=acme)).status_code == 404
    stolen = await http.post(f"/v1/events/{event_id}/redeliver", headers={**acme, "Idempotency-Key": unique})
    assert (stolen.status_code, stolen.headers["Content-Type"]) == (404, PROBLEM)
    # Another merchant's cursor is no cursor: an empty page, nothing of the default merchant's.
    cursor = await http.get("/v1/events", params={"starting_after": event_id}, headers=acme)
    assert (cursor.status_code, cursor.json()["data"]) == (200, [])
    # Refused, the redelivery changed nothing: the owner's event is as it was.
    own = await http.get(f"/v1/events/{event_id}", headers=as_key(stack, None))
    assert (own.status_code, own.json()["delivery_status"]) == (200, events[0]["delivery_status"])

    reader, writer = as_key(stack, "reader"), as_key(stack, "writer")
    assert (await http.get(f"/v1/events/{event_id}", headers=reader)).status_code == 200
    refused = await http.post(
        f"/v1/events/{event_id}/redeliver", headers={**reader, "Idempotency-Key": unique}
    )
    assert (refused.status_code, refused.json()["required_scope"]) == (403, "payments:write")
    for path in ("/v1/events", f"/v1/events/{event_id}"):
        unread = await http.get(path, headers=writer)
        assert (unread.status_code, unread.json()["required_scope"]) == (403, "payments:read"), path
