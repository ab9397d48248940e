"""RFC 9457 problem details: every error the API answers is `application/problem+json` with `type`,
`title`, `status`, `detail`, a stable `code`, and `errors` (JSON pointer + detail) for field problems.

The middleware here is the last line: anything a handler did not turn into a problem becomes a 500
that says nothing about internals, while the log keeps the traceback under a correlation id.
"""

from __future__ import annotations

import json
import logging
import math
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from aiohttp import web
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from api.ports import StoreUnavailable
from api.schemas import mask_card_numbers
from workflows.rejections import Rejection

log = logging.getLogger("durapay.api")

PROBLEM_CONTENT_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:durapay:problem:"

# HTTP status -> (code, title) for errors aiohttp raises itself (routing, body size).
_HTTP_DEFAULTS: dict[int, tuple[str, str]] = {
    400: ("bad_request", "Bad request"),
    401: ("unauthorized", "Authentication required"),
    403: ("forbidden", "Forbidden"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    413: ("payload_too_large", "Request body too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
    429: ("rate_limited", "Too many requests"),
}

# Update rejections (workflows.rejections) -> HTTP status and title.
_REJECTIONS: dict[str, tuple[int, str]] = {
    Rejection.IDEMPOTENCY_KEY_REUSED: (422, "Idempotency-Key reused for a different request"),
    Rejection.INVALID_STATE: (409, "The payment is not in a state that allows this"),
    Rejection.AMOUNT_EXCEEDS: (422, "Amount exceeds what is available"),
    Rejection.NOT_SUPPORTED: (422, "Not supported by this payment's gateway"),
}

# Temporal answers that mean "try again shortly" rather than "this request is wrong".
_TEMPORAL_UNAVAILABLE = frozenset(
    {
        RPCStatusCode.UNAVAILABLE,
        RPCStatusCode.DEADLINE_EXCEEDED,
        RPCStatusCode.RESOURCE_EXHAUSTED,
        RPCStatusCode.CANCELLED,
        RPCStatusCode.ABORTED,
    }
)


def field_error(pointer: str, detail: str) -> dict[str, str]:
    """One entry of `errors`: `pointer` is a JSON pointer into the request body ("/amount")."""
    return {"pointer": pointer, "detail": detail}


class Problem(Exception):
    """Raise from a handler to answer a problem; the middleware renders it."""

    def __init__(
        self,
        status: int,
        code: str,
        title: str,
        detail: str | None = None,
        *,
        errors: Sequence[Mapping[str, str]] | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}")
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail or title
        self.errors = list(errors or [])
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": TYPE_PREFIX + self.code,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
        }
        if self.errors:
            body["errors"] = self.errors
        body.update(self.extra)
        return body

    def response(self) -> web.Response:
        return web.Response(
            status=self.status,
            body=json.dumps(self.body()).encode(),
            headers={"Content-Type": PROBLEM_CONTENT_TYPE, **self.headers},
        )


def validation_problem(errors: Sequence[Mapping[str, str]], detail: str | None = None) -> Problem:
    return Problem(
        422,
        "validation_failed",
        "The request is not valid",
        detail or "; ".join(f"{e['pointer'] or '/'}: {e['detail']}" for e in errors),
        errors=errors,
    )


def rate_limited(code: str, detail: str, retry_after: float, **extra: Any) -> Problem:
    """429 with `Retry-After` in whole seconds, rounded up: never tell a client to retry too early."""
    seconds = max(1, math.ceil(retry_after))
    return Problem(
        429,
        code,
        "Too many requests",
        f"{detail}; retry in {seconds} s.",
        headers={"Retry-After": str(seconds)},
        extra=extra,
    )


def temporal_unavailable() -> Problem:
    return Problem(
        503,
        "temporarily_unavailable",
        "Service temporarily unavailable",
        "The payment engine did not answer; retry with the same Idempotency-Key.",
        headers={"Retry-After": "1"},
    )


def problem_for_update_failure(exc: WorkflowUpdateFailedError) -> Problem:
    """An update validator/handler rejection as a problem; anything unexpected stays an error."""
    cause = exc.cause
    if isinstance(cause, ApplicationError) and cause.type in _REJECTIONS:
        status, title = _REJECTIONS[cause.type]
        code = Rejection(cause.type).name.lower()
        return Problem(status, code, title, cause.message or title)
    raise exc


def _from_http_exception(exc: web.HTTPException) -> Problem:
    code, title = _HTTP_DEFAULTS.get(exc.status, ("http_error", exc.reason))
    # aiohttp's own texts ("413: Request Entity Too Large") carry nothing from the request.
    detail = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else title
    headers = {
        k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after", "www-authenticate")
    }
    return Problem(exc.status, code, title, detail, headers=headers)


@web.middleware
async def problem_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except Problem as problem:
        return problem.response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _from_http_exception(exc).response()
    except RPCError as exc:
        if exc.status in _TEMPORAL_UNAVAILABLE:
            log.warning("temporal unavailable on %s %s: %s", request.method, request.path, exc.status.name)
            return temporal_unavailable().response()
        return _internal(request, exc).response()
    except StoreUnavailable as exc:
        # The same answer as a Temporal outage: to the caller both are "the payment engine did
        # not answer, retry", and the inbox is written only after the signal, so a retried
        # webhook is applied once.
        log.warning("store unavailable on %s %s: %s", request.method, request.path, exc)
        return temporal_unavailable().response()
    except Exception as exc:  # the catch-all the middleware exists for
        return _internal(request, exc).response()


def _internal(request: web.Request, exc: BaseException) -> Problem:
    error_id = uuid.uuid4().hex
    # path, not the URL: a query string is caller-controlled and could carry anything; and even the
    # path with any card number in it masked.
    log.error(
        "unhandled error %s on %s %s", error_id, request.method, mask_card_numbers(request.path), exc_info=exc
    )
    return Problem(
        500,
        "internal_error",
        "Internal server error",
        f"Something went wrong on our side; quote error id {error_id} when reporting it.",
        extra={"error_id": error_id},
    )
