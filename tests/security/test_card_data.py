"""Raw card numbers sent to the API, wherever a caller could put them (fields, keys, nested values,
numbers, paths, headers, webhook bodies), are refused, and no such number reaches a log line, a
database table or a Temporal history, while a real payment made alongside shows up in all three.

Card numbers here are the networks' published test numbers, never real cards.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from tests.security.conftest import JsonLog
from tests.security.leaks import database_text, found, temporal_bytes, variants
from tests.stack import Stack, running_stack

# One number per place it is sent from, so a leak points at its source.
CARDS = {
    "token": "4111111111111111",
    "spaced token": "4000 0566 5566 5556",
    "metadata value": "5555-5555-5555-4444",
    "metadata key": "378282246310005",
    "description": "6011111111111117",
    "customer id": "3530111333300000",
    "order id": "30569309025904",
    "named field": "4242424242424242",
    "json number": "5105105105105100",
    "capture body": "4012888888881881",
    "refund reason": "6011000990139424",
    "return data": "3566002020360505",
    "path": "5200828282828210",
    "query": "4000002500003155",
    "idempotency key": "4000000000003220",
    "webhook path": "5425233430109903",
    "webhook body": "4917610000000000",
}


@pytest_asyncio.fixture(scope="module")
async def stack(temporal_env, tmp_path_factory) -> AsyncIterator[Stack]:
    db = tmp_path_factory.mktemp("card-data") / "durapay.db"
    async with running_stack(
        temporal_env.client,
        task_queue=f"tq-card-data-{uuid.uuid4().hex[:8]}",
        db_url=f"sqlite+aiosqlite:///{db}",
        config_overrides={"api": {"rate_limiting": True}},
    ) as running:
        yield running


def payment(unique: str, **fields) -> dict:
    body = {
        "order_id": f"order-{unique}",
        "amount": "49.99",
        "currency": "USD",
        "payment_method": {"type": "card", "token": "tok_visa", "last4": "4242", "brand": "visa"},
        "capture_method": "manual",
    }
    return {**body, **fields}


async def test_card_numbers_are_refused_and_recorded_nowhere(
    stack: Stack, unique: str, caplog: pytest.LogCaptureFixture, json_log: JsonLog
):
    caplog.set_level(logging.DEBUG)
    async with stack.http() as http:

        async def post(path: str, body, key: str, **kwargs) -> httpx.Response:
            return await http.post(path, json=body, headers=stack.headers(key), **kwargs)

        # The control: a real payment, captured and refunded, with everything a request may carry.
        created = await post("/v1/payments", payment(unique, metadata={"cart": f"cart-{unique}"}), unique)
        assert created.status_code == 201, created.text
        path = f"/v1/payments/{created.json()['id']}"
        method = lambda **extra: {"type": "card", "token": "tok_visa", **extra}  # noqa: E731
        refused = {
            "token": await post(
                "/v1/payments", payment(unique, payment_method=method(token=CARDS["token"])), f"{unique}-1"
            ),
            "spaced token": await post(
                "/v1/payments",
                payment(unique, payment_method=method(token=CARDS["spaced token"])),
                f"{unique}-2",
            ),
            "metadata value": await post(
                "/v1/payments",
                payment(unique, metadata={"note": f"card {CARDS['metadata value']}"}),
                f"{unique}-3",
            ),
            "metadata key": await post(
                "/v1/payments", payment(unique, metadata={CARDS["metadata key"]: "x"}), f"{unique}-4"
            ),
            "description": await post(
                "/v1/payments",
                payment(unique, description=f"pay with {CARDS['description']} exp 12/34"),
                f"{unique}-5",
            ),
            "customer id": await post(
                "/v1/payments", payment(unique, customer_id=CARDS["customer id"]), f"{unique}-6"
            ),
            "order id": await post(
                "/v1/payments", payment(unique, order_id=f"ord-{CARDS['order id']}"), f"{unique}-7"
            ),
            "named field": await post(
                "/v1/payments",
                payment(unique, payment_method=method(number=CARDS["named field"], cvc="123")),
                f"{unique}-8",
            ),
            "json number": await post(
                "/v1/payments",
                payment(unique, payment_method=method(token=int(CARDS["json number"]))),
                f"{unique}-9",
            ),
            "capture body": await post(
                f"{path}/capture", {"amount": "10.00", "note": CARDS["capture body"]}, f"{unique}-c"
            ),
            "refund reason": await post(
                f"{path}/refunds", {"reason": f"back to {CARDS['refund reason']}"}, f"{unique}-r"
            ),
            "return data": await post(
                f"{path}/actions/complete", {"data": {"pan": CARDS["return data"]}}, f"{unique}-a"
            ),
        }
        for source, answer in refused.items():
            assert (answer.status_code, answer.json()["code"]) == (422, "card_data_not_allowed"), source
            assert not found(variants(CARDS[source]), answer.text), source  # not even echoed back

        # Where no body is involved, the number is at least never kept.
        assert (await http.get(f"/v1/payments/{CARDS['path']}", headers=stack.headers())).status_code == 404
        listed = await http.get("/v1/payments", params={"order_id": CARDS["query"]}, headers=stack.headers())
        assert (listed.status_code, listed.json()["code"]) == (422, "card_data_not_allowed")
        captured = await post(f"{path}/capture", {"amount": "20.00"}, CARDS["idempotency key"])
        assert (captured.status_code, captured.json()["captured_amount"]) == (200, "20.00"), captured.text
        assert (await http.post(f"/webhooks/{CARDS['webhook path']}", content=b"{}")).status_code == 404
        forged = await http.post("/webhooks/mock", content=b'{"card": "%s"}' % CARDS["webhook body"].encode())
        assert forged.status_code == 400
        refunded = await post(f"{path}/refunds", {"amount": "5.00", "reason": "damaged"}, f"{unique}-r2")
        assert refunded.status_code == 201, refunded.text

    every_number = {variant for number in CARDS.values() for variant in variants(number)}
    control = [f"order-{unique}", f"cart-{unique}"]
    # Everything the server side logged; the test's own HTTP client logs the URLs it calls.
    logs = "\n".join(
        record.getMessage() + (f"\n{record.exc_text}" if record.exc_text else "")
        for record in caplog.records
        if not (record.name == "httpx" and stack.base_url in record.getMessage())
    )
    # The same, as JSON lines: the message and every field around it.
    json_logs = "\n".join(
        json.dumps(entry)
        for entry in json_log.entries()
        if not (entry["logger"] == "httpx" and stack.base_url in entry["message"])
    )
    database = await database_text(stack.config.database.url.get_secret_value())
    histories = await temporal_bytes(stack.client, stack.task_queue)
    assert (found(control[:1], logs), found(control, database), found(control, histories)) == (
        control[:1],
        control,
        control,
    )
    assert found(every_number, logs) == []
    assert found(control[:1], json_logs) == control[:1]
    assert found(every_number, json_logs) == []
    assert found(every_number, database) == []
    assert found(every_number, histories) == []
