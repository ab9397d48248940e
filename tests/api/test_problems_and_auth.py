"""Problem details, the catch-all middleware, bearer auth and rate limiting, over real HTTP."""

from __future__ import annotations

import hashlib
import logging

import aiohttp
import pytest
from aiohttp import web
from pydantic import SecretStr
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from api.auth import authenticate
from api.problems import PROBLEM_CONTENT_TYPE, Problem, problem_for_update_failure, problem_middleware
from tests.api.fakes import AUTH, CountingRateLimiter, FakeStore, a_view, make_deps, serve
from workflows.rejections import Rejection


async def _raw_app(handler) -> web.Application:
    app = web.Application(middlewares=[problem_middleware])
    app.router.add_get("/boom", handler)
    return app


async def _serve_app(app: web.Application):
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


async def test_unhandled_error_is_a_500_problem_without_internals(caplog):
    async def boom(request):
        raise RuntimeError("db password is hunter2")

    runner, base = await _serve_app(await _raw_app(boom))
    try:
        with caplog.at_level(logging.ERROR, logger="durapay.api"):
            async with aiohttp.ClientSession() as http, http.get(f"{base}/boom") as resp:
                body = await resp.json(content_type=None)
                assert resp.status == 500
                assert resp.content_type == PROBLEM_CONTENT_TYPE
    finally:
        await runner.cleanup()
    assert body["type"] == "urn:durapay:problem:internal_error"
    assert body["status"] == 500 and body["title"] and body["detail"]
    assert "hunter2" not in str(body) and "RuntimeError" not in str(body)
    # The log keeps the traceback, findable by the id the caller was given.
    assert any(body["error_id"] in r.getMessage() and r.exc_info for r in caplog.records)


@pytest.mark.parametrize(
    ("status", "expected"),
    [(RPCStatusCode.UNAVAILABLE, 503), (RPCStatusCode.DEADLINE_EXCEEDED, 503), (RPCStatusCode.INTERNAL, 500)],
)
async def test_temporal_errors(status, expected):
    async def down(request):
        raise RPCError("connection refused", status, b"")

    runner, base = await _serve_app(await _raw_app(down))
    try:
        async with aiohttp.ClientSession() as http, http.get(f"{base}/boom") as resp:
            body = await resp.json(content_type=None)
            assert resp.status == expected
            if expected == 503:
                assert resp.headers["Retry-After"] == "1"
    finally:
        await runner.cleanup()
    assert "connection refused" not in str(body)


@pytest.mark.parametrize(
    ("rejection", "status", "code"),
    [
        (Rejection.IDEMPOTENCY_KEY_REUSED, 422, "idempotency_key_reused"),
        (Rejection.INVALID_STATE, 409, "invalid_state"),
        (Rejection.AMOUNT_EXCEEDS, 422, "amount_exceeds"),
        (Rejection.NOT_SUPPORTED, 422, "not_supported"),
    ],
)
def test_update_rejections_map_to_problems(rejection, status, code):
    problem = problem_for_update_failure(
        WorkflowUpdateFailedError(ApplicationError("at most 10.00 USD is left", type=rejection))
    )
    assert (problem.status, problem.code, problem.detail) == (status, code, "at most 10.00 USD is left")


def test_unexpected_update_failure_is_not_disguised_as_a_rejection():
    error = WorkflowUpdateFailedError(ApplicationError("boom", type="SomethingElse"))
    with pytest.raises(WorkflowUpdateFailedError):
        problem_for_update_failure(error)


def test_problem_body_shape():
    problem = Problem(422, "validation_failed", "Invalid", errors=[{"pointer": "/amount", "detail": "bad"}])
    assert problem.body() == {
        "type": "urn:durapay:problem:validation_failed",
        "title": "Invalid",
        "status": 422,
        "detail": "Invalid",
        "code": "validation_failed",
        "errors": [{"pointer": "/amount", "detail": "bad"}],
    }


def test_authenticate_finds_the_key_id():
    keys = {"a": SecretStr("sk_a"), "b": SecretStr("sk_b")}
    assert authenticate("Bearer sk_b", keys) == "b"
    assert authenticate("bearer  sk_a ", keys) == "a"
    assert authenticate("Bearer sk_c", keys) is None
    assert authenticate("Basic sk_a", keys) is None
    assert authenticate("Bearer", keys) is None
    assert authenticate(None, keys) is None


def test_a_key_configured_as_its_sha256_matches_the_key_itself():
    digest = hashlib.sha256(b"sk_live_hashed_0123456789").hexdigest()
    keys = {"plain": SecretStr("sk_a"), "hashed": SecretStr(f"sha256:{digest}")}
    assert authenticate("Bearer sk_live_hashed_0123456789", keys) == "hashed"
    # The hash is not a password: presenting it (or its text) authenticates nothing.
    assert authenticate(f"Bearer {digest}", keys) is None
    assert authenticate(f"Bearer sha256:{digest}", keys) is None
    assert authenticate("Bearer sk_a", keys) == "plain"


async def test_a_merchants_key_and_its_scopes_reach_the_handlers():
    """A key of another merchant sees none of the default merchant's payments; a key without
    payments:read is refused reading with 403 before anything is looked up."""
    view = a_view()
    deps = make_deps(
        store=FakeStore(views={view.id: view}),
        key_merchants={"key_other": "acme"},
        key_scopes={"key_test": frozenset({"payments:write"})},
    )
    other = {"Authorization": "Bearer sk_test_other"}
    async with serve(deps) as base, aiohttp.ClientSession() as http:
        async with http.get(f"{base}/v1/payments/{view.id}", headers=other) as resp:
            assert (resp.status, (await resp.json(content_type=None))["code"]) == (404, "payment_not_found")
        async with http.get(f"{base}/v1/payments", headers=other) as resp:
            assert (await resp.json())["data"] == []
        async with http.get(f"{base}/v1/payments/{view.id}", headers=AUTH) as resp:
            problem = await resp.json(content_type=None)
            assert (resp.status, resp.content_type) == (403, PROBLEM_CONTENT_TYPE)
            assert (problem["code"], problem["required_scope"]) == ("insufficient_scope", "payments:read")


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Token sk_test_0123456789abcdef"}],
)
async def test_merchant_api_needs_a_key(headers):
    async with serve(make_deps()) as base, aiohttp.ClientSession() as http:
        async with http.get(f"{base}/v1/payments", params={"order_id": "o-1"}, headers=headers) as resp:
            body = await resp.json(content_type=None)
            assert resp.status == 401
            assert resp.content_type == PROBLEM_CONTENT_TYPE
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert body["code"] == "unauthorized"


async def test_routing_errors_are_problems():
    async with serve(make_deps()) as base, aiohttp.ClientSession() as http:
        async with http.get(f"{base}/nope") as resp:
            assert resp.status == 404
            assert resp.content_type == PROBLEM_CONTENT_TYPE
            assert (await resp.json(content_type=None))["code"] == "not_found"
        async with http.delete(f"{base}/healthz") as resp:
            assert resp.status == 405
            assert resp.headers["Allow"] == "GET"
            assert (await resp.json(content_type=None))["code"] == "method_not_allowed"


async def test_healthz_and_openapi_need_no_key():
    async with serve(make_deps()) as base, aiohttp.ClientSession() as http:
        async with http.get(f"{base}/healthz") as resp:
            assert resp.status == 200
            assert await resp.json() == {"status": "ok"}
        async with http.get(f"{base}/openapi.json") as resp:
            assert resp.status == 200
            assert (await resp.json())["openapi"] == "3.1.0"


async def test_rate_limit_per_api_key():
    limiter = CountingRateLimiter()
    store = FakeStore(views={a_view().id: a_view()})
    deps = make_deps(store=store, rate_limiter=limiter, limits={"rate_limit_per_minute": 2})
    async with serve(deps) as base, aiohttp.ClientSession() as http:
        statuses = []
        for _ in range(3):
            async with http.get(f"{base}/v1/payments/{a_view().id}", headers=AUTH) as resp:
                statuses.append(resp.status)
                retry_after = resp.headers.get("Retry-After")
        assert statuses == [200, 200, 429]
        assert retry_after == "3"  # 2.5 s rounded up: never tell a client to retry too early
    assert limiter.hits == {"api:key_test": 3}
