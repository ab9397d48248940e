"""The codec server at /codec through real HTTP: Temporal's protocol (protobuf JSON payloads, with or
without a namespace segment), API keys on every POST, CORS for the UI's origin only, and clear refusals
of altered or malformed payloads."""

from __future__ import annotations

import os

import aiohttp
import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads

from api.auth import DEFAULT_SCOPES, Scope
from api.problems import PROBLEM_CONTENT_TYPE
from tests.api.fakes import API_KEY_ID, AUTH, CountingRateLimiter, make_deps, serve
from workers.codec import ENCODING, AesGcmCodec

UI = "http://localhost:8233"
EMAIL = b'"ada@example.com"'


@pytest.fixture
def codec() -> AesGcmCodec:
    return AesGcmCodec({"k1": os.urandom(32)}, "k1")


def body(*payloads: Payload) -> str:
    return json_format.MessageToJson(Payloads(payloads=payloads))


def parsed(text: bytes) -> list[Payload]:
    return list(json_format.Parse(text, Payloads()).payloads)


JSON = {"Content-Type": "application/json"}
# Decoding hands out customer data: the codec server is for keys with the ops scope only.
OPS_KEY = {API_KEY_ID: frozenset({*DEFAULT_SCOPES, Scope.OPS})}


async def test_a_key_without_the_ops_scope_is_refused(codec: AesGcmCodec) -> None:
    [sealed] = await codec.encode([Payload(data=EMAIL)])
    async with serve(make_deps(codec=codec)) as base, aiohttp.ClientSession() as http:
        async with http.post(f"{base}/codec/decode", data=body(sealed), headers={**AUTH, **JSON}) as resp:
            problem = await resp.json(content_type=None)
            assert (resp.status, resp.content_type) == (403, PROBLEM_CONTENT_TYPE)
            assert (problem["code"], problem["required_scope"]) == ("insufficient_scope", "ops")
            assert b"ada@example.com" not in await resp.read()


async def test_encode_then_decode_through_the_endpoints(codec: AesGcmCodec) -> None:
    original = Payload(metadata={"encoding": b"json/plain"}, data=EMAIL)
    async with serve(make_deps(key_scopes=OPS_KEY, codec=codec)) as base, aiohttp.ClientSession() as http:
        async with http.post(f"{base}/codec/encode", data=body(original), headers={**AUTH, **JSON}) as resp:
            assert (resp.status, resp.content_type) == (200, "application/json")
            [sealed] = parsed(await resp.read())
        assert sealed.metadata["encoding"] == ENCODING and EMAIL not in sealed.data
        # The CLI's `{namespace}` template puts the namespace before the operation.
        async with http.post(
            f"{base}/codec/default/decode", data=body(sealed), headers={**AUTH, **JSON}
        ) as resp:
            assert resp.status == 200
            assert parsed(await resp.read()) == [original]
    # What the worker's codec wrote, the server opens: they are one codec.
    assert await codec.decode([sealed]) == [original]


async def test_every_post_needs_an_api_key(codec: AesGcmCodec) -> None:
    [sealed] = await codec.encode([Payload(data=EMAIL)])
    async with (
        serve(make_deps(key_scopes=OPS_KEY, codec=codec, codec_cors_origins=frozenset({UI}))) as base,
        aiohttp.ClientSession() as http,
    ):
        for path in ("/codec/decode", "/codec/encode", "/codec/default/decode"):
            async with http.post(f"{base}{path}", data=body(sealed), headers={**JSON, "Origin": UI}) as resp:
                assert (resp.status, resp.content_type) == (401, PROBLEM_CONTENT_TYPE)
                assert EMAIL not in await resp.read()
                # Readable by the UI, so it can say why.
                assert resp.headers["Access-Control-Allow-Origin"] == UI


async def test_cors_preflight_for_the_ui_origin_only(codec: AesGcmCodec) -> None:
    deps = make_deps(key_scopes=OPS_KEY, codec=codec, codec_cors_origins=frozenset({UI}))
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-namespace",
    }
    async with serve(deps) as base, aiohttp.ClientSession() as http:
        async with http.options(f"{base}/codec/decode", headers={**preflight, "Origin": UI}) as resp:
            assert resp.status == 204
            assert resp.headers["Access-Control-Allow-Origin"] == UI
            assert resp.headers["Access-Control-Allow-Methods"] == "POST"
            allowed = {h.strip() for h in resp.headers["Access-Control-Allow-Headers"].split(",")}
            assert {"authorization", "content-type", "x-namespace"} <= allowed
            assert resp.headers["Access-Control-Allow-Credentials"] == "true"
        async with http.options(
            f"{base}/codec/decode", headers={**preflight, "Origin": "https://evil.example"}
        ) as resp:
            assert "Access-Control-Allow-Origin" not in resp.headers
        [sealed] = await codec.encode([Payload(data=EMAIL)])
        async with http.post(
            f"{base}/codec/decode", data=body(sealed), headers={**AUTH, **JSON, "Origin": UI}
        ) as resp:
            assert resp.status == 200 and resp.headers["Access-Control-Allow-Origin"] == UI
            assert "Origin" in resp.headers["Vary"]


async def test_altered_and_malformed_payloads_are_refused(codec: AesGcmCodec) -> None:
    [sealed] = await codec.encode([Payload(data=EMAIL)])
    altered = Payload(metadata=dict(sealed.metadata), data=sealed.data[:-1] + bytes([sealed.data[-1] ^ 1]))
    unknown_key = Payload(metadata={**sealed.metadata, "encryption-key-id": b"retired"}, data=sealed.data)
    async with serve(make_deps(key_scopes=OPS_KEY, codec=codec)) as base, aiohttp.ClientSession() as http:
        for payload in (altered, unknown_key):
            async with http.post(
                f"{base}/codec/decode", data=body(payload), headers={**AUTH, **JSON}
            ) as resp:
                problem = await resp.json(content_type=None)
                assert (resp.status, problem["code"]) == (422, "payload_not_decodable")
                # Says what is wrong, never which encryption keys this deployment holds.
                assert "not hold, or was altered" in problem["detail"]
                assert "k1" not in problem["detail"] and "retired" not in problem["detail"]
        async with http.post(
            f"{base}/codec/decode", data=b'{"payloads": 7}', headers={**AUTH, **JSON}
        ) as resp:
            assert resp.status == 400 and (await resp.json(content_type=None))["code"] == "invalid_payloads"


async def test_no_codec_no_codec_server() -> None:
    async with serve(make_deps()) as base, aiohttp.ClientSession() as http:
        async with http.post(
            f"{base}/codec/decode", data=body(Payload(data=EMAIL)), headers={**AUTH, **JSON}
        ) as resp:
            assert resp.status == 404


async def test_the_codec_server_is_rate_limited_per_api_key(codec: AesGcmCodec) -> None:
    """Issue #17 item 7: decoding hands out customer data; a stolen key must not drain it at will."""
    [sealed] = await codec.encode([Payload(data=EMAIL)])
    limiter = CountingRateLimiter()
    deps = make_deps(
        key_scopes=OPS_KEY, codec=codec, rate_limiter=limiter, limits={"codec_rate_limit_per_minute": 2}
    )
    async with serve(deps) as base, aiohttp.ClientSession() as http:
        statuses = []
        for _ in range(3):
            async with http.post(f"{base}/codec/decode", data=body(sealed), headers={**AUTH, **JSON}) as resp:
                statuses.append(resp.status)
                retry_after = resp.headers.get("Retry-After")
    assert statuses == [200, 200, 429]
    assert retry_after is not None
    assert list(limiter.hits) == ["codec:key_test"]
