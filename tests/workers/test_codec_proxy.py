"""`durapay dev`'s codec proxy for the Temporal UI, through real sockets: the UI's calls (no API key,
`X-Namespace`, its `Origin`) reach the API's codec server with the ops key added and come back
decoded; CORS stays the API's; the proxy listens on loopback addresses only."""

from __future__ import annotations

import os

import aiohttp
import pytest
from google.protobuf import json_format
from pydantic import SecretStr
from temporalio.api.common.v1 import Payload, Payloads

from api.auth import DEFAULT_SCOPES, Scope
from api.problems import PROBLEM_CONTENT_TYPE
from tests.api.fakes import make_deps, serve
from workers.codec import ENCODING, AesGcmCodec
from workers.codec_proxy import CodecProxyError, running_codec_proxy

UI = "http://127.0.0.1:8233"
DEV_KEY = SecretStr("dev-key-" + "x" * 24)
EMAIL = b'"ada@example.com"'
# What the Temporal UI sends with a codec call: no credentials.
UI_HEADERS = {"Content-Type": "application/json", "X-Namespace": "default", "Origin": UI}


def codec_api(codec: AesGcmCodec):
    return serve(
        make_deps(
            api_keys={"dev": DEV_KEY},
            key_scopes={"dev": frozenset({*DEFAULT_SCOPES, Scope.OPS})},
            codec=codec,
            codec_cors_origins=frozenset({UI}),
        )
    )


def body(*payloads: Payload) -> str:
    return json_format.MessageToJson(Payloads(payloads=payloads))


async def test_the_ui_decodes_through_the_proxy() -> None:
    codec = AesGcmCodec({"k1": os.urandom(32)}, "k1")
    original = Payload(metadata={"encoding": b"json/plain"}, data=EMAIL)
    [sealed] = await codec.encode([original])
    assert sealed.metadata["encoding"] == ENCODING and EMAIL not in sealed.data
    async with (
        codec_api(codec) as api,
        running_codec_proxy(DEV_KEY) as proxy,
        aiohttp.ClientSession() as http,
    ):
        assert proxy.url.startswith("http://127.0.0.1:")
        # The dev server starts (with this URL) before the API listens: until then, a clear 503.
        async with http.post(f"{proxy.url}/decode", data=body(sealed), headers=UI_HEADERS) as resp:
            assert (resp.status, resp.content_type) == (503, PROBLEM_CONTENT_TYPE)
        proxy.forward_to(f"{api}/codec")

        preflight = {
            "Origin": UI,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-namespace",
        }
        async with http.options(f"{proxy.url}/decode", headers=preflight) as resp:
            assert resp.status == 204
            assert resp.headers["Access-Control-Allow-Origin"] == UI
            assert "x-namespace" in resp.headers["Access-Control-Allow-Headers"]

        for path in ("/decode", "/default/decode"):
            async with http.post(f"{proxy.url}{path}", data=body(sealed), headers=UI_HEADERS) as resp:
                assert (resp.status, resp.content_type) == (200, "application/json")
                assert resp.headers["Access-Control-Allow-Origin"] == UI
                assert list(json_format.Parse(await resp.read(), Payloads()).payloads) == [original]
        async with http.post(f"{proxy.url}/encode", data=body(original), headers=UI_HEADERS) as resp:
            [resealed] = json_format.Parse(await resp.read(), Payloads()).payloads
            assert await codec.decode([resealed]) == [original]

        # CORS is still the API's decision: another origin's page cannot read the answer.
        evil = {**UI_HEADERS, "Origin": "https://evil.example"}
        async with http.post(f"{proxy.url}/decode", data=body(sealed), headers=evil) as resp:
            assert "Access-Control-Allow-Origin" not in resp.headers
        # Only the codec paths are forwarded.
        async with http.get(f"{proxy.url}/decode") as resp:
            assert resp.status == 405
        async with http.post(f"{proxy.url}/v1/payments", data="{}", headers=UI_HEADERS) as resp:
            assert resp.status == 404


async def test_an_unreachable_api_is_a_clear_502() -> None:
    async with running_codec_proxy(DEV_KEY) as proxy, aiohttp.ClientSession() as http:
        proxy.forward_to("http://127.0.0.1:9/codec")  # discard: nothing listens
        async with http.post(f"{proxy.url}/decode", data=body(), headers=UI_HEADERS) as resp:
            problem = await resp.json(content_type=None)
            assert (resp.status, problem["code"]) == (502, "codec_unreachable")
    assert DEV_KEY.get_secret_value() not in repr(proxy)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "localhost", "example.com"])
async def test_the_proxy_listens_on_loopback_only(host: str) -> None:
    with pytest.raises(CodecProxyError, match="loopback address only"):
        async with running_codec_proxy(DEV_KEY, host=host):
            pytest.fail("the proxy started on a non-loopback address")
