"""Log output of the `durapay` processes: text for people, or JSON lines for a log pipeline.

JSON: one object per line with `time`, `level`, `logger`, `message` and, where known, the payment
(`payment_id`, `workflow_id`), the merchant (`merchant_id`) and the OpenTelemetry `trace_id`. The
ids come from where the line was logged: inside a workflow (Temporal's info; the merchant from the
payment's `MerchantId` search attribute), inside an activity (Temporal's info; the merchant from an
argument that carries one, e.g. a PaymentView, through `MerchantLogContext`), or inside an API request
(the payment its path names, the authenticated caller's merchant). Messages are the
same text the plain format prints: what never goes into a log line (card data, secrets) is kept out
at the source, and tests/security scans both formats.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

from opentelemetry import trace
from temporalio import activity, workflow
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from api.app import REQUEST_MERCHANT_ID, REQUEST_PAYMENT_ID
from workflows.search_attributes import MERCHANT_ID

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
CONTEXT_FIELDS = ("payment_id", "workflow_id", "merchant_id", "trace_id")
PAYMENT_WORKFLOW_PREFIX = "payment-"  # PaymentWorkflow's id is payment-<payment id> (api.payments)


class ContextFilter(logging.Filter):
    """Adds the `CONTEXT_FIELDS` to every record (None where unknown); an `extra=` value wins."""

    def filter(self, record: logging.LogRecord) -> bool:
        workflow_id = _workflow_id()
        if workflow_id is None:
            payment_id = REQUEST_PAYMENT_ID.get()
        elif workflow_id.startswith(PAYMENT_WORKFLOW_PREFIX):
            payment_id = workflow_id.removeprefix(PAYMENT_WORKFLOW_PREFIX)
        else:
            payment_id = None  # reconciliation
        span = trace.get_current_span().get_span_context()
        found = {
            "payment_id": payment_id,
            "workflow_id": workflow_id,
            "merchant_id": _merchant_id(),
            "trace_id": format(span.trace_id, "032x") if span.is_valid else None,
        }
        for name, value in found.items():
            if getattr(record, name, None) is None:
                setattr(record, name, value)
        return True


def _workflow_id() -> str | None:
    if activity.in_activity():
        return activity.info().workflow_id
    if workflow.in_workflow():
        return workflow.info().workflow_id
    return None


def _merchant_id() -> str | None:
    if activity.in_activity():
        return _ACTIVITY_MERCHANT_ID.get()
    if workflow.in_workflow():
        return workflow.info().typed_search_attributes.get(MERCHANT_ID)
    return REQUEST_MERCHANT_ID.get()


# Activity info has no search attributes: the merchant comes from the activity's arguments.
_ACTIVITY_MERCHANT_ID: ContextVar[str | None] = ContextVar("durapay_activity_merchant_id", default=None)


class MerchantLogContext(Interceptor):
    """Worker interceptor: while an activity runs, its log lines name the merchant of the first
    argument that carries a `merchant_id` (store transitions, order steps, customers); gateway calls
    carry none, so their lines say null."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _MerchantActivityInbound(next)


class _MerchantActivityInbound(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        merchants = (_merchant_of(arg) for arg in input.args)
        token = _ACTIVITY_MERCHANT_ID.set(next((m for m in merchants if m is not None), None))
        try:
            return await super().execute_activity(input)
        finally:
            _ACTIVITY_MERCHANT_ID.reset(token)


def _merchant_of(arg: Any) -> str | None:
    """`arg.merchant_id`, or its payment view's (a store transition carries the whole view)."""
    for carrier in (arg, getattr(arg, "view", None)):
        merchant_id = getattr(carrier, "merchant_id", None)
        if isinstance(merchant_id, str):
            return merchant_id
    return None


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({name: getattr(record, name, None) for name in CONTEXT_FIELDS})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def log_handler(log_format: LogFormat, stream: TextIO | None = None) -> logging.Handler:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    return handler


def configure_logging(level: str, log_format: LogFormat) -> None:
    """The root logger at `level`, one handler on stderr in `log_format` (unless the root logger
    has handlers already, as under pytest: `logging.basicConfig`'s rule)."""
    logging.basicConfig(level=level, handlers=[log_handler(log_format)])
    # Alembic announces every plugin it loads at INFO; only its warnings are news.
    logging.getLogger("alembic").setLevel(logging.WARNING)
