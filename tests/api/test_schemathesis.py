"""Hostile input from the API's own description: schemathesis generates requests (valid and invalid,
positive and negative modes) for every operation of the OpenAPI document the real app serves, and
sends them over real HTTP to the real API with a real worker, store and mock gateway behind it, rate
limiting on. No answer may be a 5xx, every 4xx is `application/problem+json`, and every answer
conforms to the document (status codes, content types, bodies).

Bounded (`MAX_EXAMPLES` per operation and mode) to stay well under a minute.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest_asyncio
import schemathesis
from hypothesis import HealthCheck, reject, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import load_openapi
from api.problems import PROBLEM_CONTENT_TYPE
from tests.stack import Stack, running_stack

MAX_EXAMPLES = 15


@pytest_asyncio.fixture(scope="module")
async def hostile_stack(temporal_env, tmp_path_factory) -> AsyncIterator[Stack]:
    # schemathesis runs each async case on `asyncio.get_event_loop()`, or on a new loop when the
    # thread has none current: then the stack (on this session loop) never answers. An earlier
    # test's `asyncio.run` (durapay's CLI, e.g. tests/workers/test_cli.py) leaves none current.
    asyncio.set_event_loop(asyncio.get_running_loop())
    db = tmp_path_factory.mktemp("schemathesis") / "durapay.db"
    # Short decision timeout: a generated payment the mock keeps waiting must not hold a worker slot
    # for the default 30 s before its 202.
    overrides = {"api": {"rate_limiting": True, "decide_timeout_seconds": 3}}
    async with running_stack(
        temporal_env.client,
        task_queue=f"tq-schemathesis-{uuid.uuid4().hex[:8]}",
        db_url=f"sqlite+aiosqlite:///{db}",
        config_overrides=overrides,
    ) as stack:
        yield stack


# Built when the module loads (schemathesis parametrizes at collection); the first test checks it
# is exactly the document the running app serves.
schema = schemathesis.openapi.from_dict(load_openapi())
schema.config.generation.update(
    # Unknown query parameters and headers are ignored, as HTTP APIs do; not a "negative" case here.
    allow_extra_parameters=False,
    # The bearer key is added to every request below; it is not a parameter to fuzz away.
    with_security_parameters=False,
    database="none",  # no .hypothesis/ directory in the working tree
)
# The coverage phase (every boundary value of every field) doubles the run time for nothing the
# fuzzing phase has not found here; the documented examples keep a valid payment in every run.
schema.config.phases.update(phases=["examples", "fuzzing"])


async def test_the_fuzzed_document_is_the_served_one(hostile_stack: Stack) -> None:
    async with hostile_stack.http() as http:
        served = await http.get("/openapi.json")
    assert (served.status_code, served.json()) == (200, load_openapi())


def problem_details_on_4xx(ctx: Any, response: schemathesis.Response, case: schemathesis.Case) -> bool | None:
    """Every client error is RFC 9457 problem details with a stable code."""
    if 400 <= response.status_code < 500:
        content_type = response.headers.get("content-type", [""])[0]
        assert content_type == PROBLEM_CONTENT_TYPE, f"{response.status_code} answered as {content_type!r}"
        problem = json.loads(response.content)
        assert problem["status"] == response.status_code
        assert problem["code"] and problem["type"].endswith(problem["code"])
    return None


async def send(stack: Stack, case: schemathesis.Case) -> httpx.Response:
    kwargs = case.as_transport_kwargs(base_url=stack.base_url, headers=stack.headers())
    headers = dict(kwargs.get("headers") or {})
    if "json" in kwargs:
        content: Any = json.dumps(kwargs["json"]).encode()
        headers.setdefault("Content-Type", "application/json")
    else:
        content = kwargs.get("data")
        if isinstance(content, dict):  # a form body
            content = urlencode(content, doseq=True)
    try:
        async with httpx.AsyncClient(timeout=30, cookies=kwargs.get("cookies")) as http:
            return await http.request(
                kwargs["method"], kwargs["url"], params=kwargs.get("params"), headers=headers, content=content
            )
    except (httpx.LocalProtocolError, UnicodeEncodeError):
        reject()  # a header no HTTP client can send: nothing reached the server
        raise AssertionError("unreachable") from None  # reject() raises


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
async def test_no_5xx_problem_details_and_conformance(hostile_stack: Stack, case: schemathesis.Case) -> None:
    response = await send(hostile_stack, case)
    case.validate_response(
        response,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
            negative_data_rejection,
        ],
        additional_checks=[problem_details_on_4xx],
    )
