"""JSON log lines (workers/logging_setup.py): one object per line, with the payment, workflow,
merchant and trace ids known where the line was logged. (Lines from inside activities, with their
payment, are checked on a real stack in tests/security/test_no_secrets.py.)"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from temporalio.testing import ActivityEnvironment
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput

from api.app import REQUEST_MERCHANT_ID, REQUEST_PAYMENT_ID
from tests.api.fakes import API_KEY_ID, API_SECRET, FakeStore, make_deps, serve
from workers.logging_setup import MerchantLogContext, log_handler
from workflows.domain import PaymentView

PAYMENT = "pay_" + "a" * 26


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    logger = logging.getLogger(f"durapay.test.{id(stream)}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(log_handler("json", stream))
    yield logger, stream


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_outside_any_context_the_ids_are_null(logged: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = logged
    logger.info("started %s", "worker")
    [entry] = lines(stream)
    assert entry.pop("time").endswith("+00:00")
    assert entry == {
        "level": "INFO",
        "logger": logger.name,
        "message": "started worker",
        "payment_id": None,
        "workflow_id": None,
        "merchant_id": None,
        "trace_id": None,
    }


def test_request_payment_and_trace_ids(logged: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = logged
    tracer = TracerProvider().get_tracer("test")
    token = REQUEST_PAYMENT_ID.set("pay_123")
    try:
        with tracer.start_as_current_span("request") as span:
            logger.warning("refund refused")
            trace_id = format(span.get_span_context().trace_id, "032x")
    finally:
        REQUEST_PAYMENT_ID.reset(token)
    [entry] = lines(stream)
    assert (entry["payment_id"], entry["trace_id"]) == ("pay_123", trace_id)


def test_explicit_ids_win_and_an_exception_stays_on_its_line(
    logged: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = logged
    try:
        raise ValueError("line one\nline two")
    except ValueError:
        logger.exception("failed", extra={"payment_id": "pay_9"})
    assert len(stream.getvalue().splitlines()) == 1
    [entry] = lines(stream)
    assert entry["payment_id"] == "pay_9"
    assert "ValueError: line one\nline two" in entry["exception"]


async def test_api_requests_on_a_payment_log_its_id(logged: tuple[logging.Logger, io.StringIO]) -> None:
    """The real app: a store read made while answering GET /v1/payments/{id} logs that id."""
    logger, stream = logged

    class LoggingStore(FakeStore):
        async def get(self, payment_id: str) -> PaymentView | None:
            logger.info("reading")
            return await super().get(payment_id)

    deps = make_deps(store=LoggingStore(), key_merchants={API_KEY_ID: "acme"})
    async with serve(deps) as base_url, httpx.AsyncClient() as http:
        # Not in the store: the answer then depends on Temporal, which this app has none of.
        await http.get(f"{base_url}/v1/payments/{PAYMENT}", headers={"Authorization": f"Bearer {API_SECRET}"})
    [entry] = lines(stream)
    assert (entry["message"], entry["payment_id"], entry["merchant_id"]) == ("reading", PAYMENT, "acme")
    assert REQUEST_PAYMENT_ID.get() is None  # reset after the request
    assert REQUEST_MERCHANT_ID.get() is None


@pytest.mark.parametrize(
    ("args", "merchant"),
    [
        ((SimpleNamespace(merchant_id="acme"),), "acme"),
        (("text", SimpleNamespace(view=SimpleNamespace(merchant_id="acme"))), "acme"),
        ((SimpleNamespace(gateway="mock"),), None),
    ],
)
async def test_activity_lines_name_the_merchant_their_arguments_carry(
    logged: tuple[logging.Logger, io.StringIO], args: tuple[Any, ...], merchant: str | None
) -> None:
    logger, stream = logged

    class Logs(ActivityInboundInterceptor):
        async def execute_activity(self, input: ExecuteActivityInput) -> Any:
            logger.info("in the activity")
            return "done"

    inbound = MerchantLogContext().intercept_activity(Logs(cast(ActivityInboundInterceptor, None)))
    call = ExecuteActivityInput(fn=lambda *a: None, args=args, executor=None, headers={})
    assert await ActivityEnvironment().run(inbound.execute_activity, call) == "done"
    [entry] = lines(stream)
    assert entry["merchant_id"] == merchant
