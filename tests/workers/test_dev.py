"""`durapay dev`: its own Temporal dev server (file-backed), the fake providers, the demo, a clean stop."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import socket
from pathlib import Path

import aiohttp
import pytest

from activities.gateways.alipay.fake import FakeAlipay
from activities.gateways.plugins import PLUGINS
from activities.gateways.stripe.fake import FakeStripe
from activities.gateways.wechat_pay.fake import FakeWechatPay
from tests.stack import deep_merge
from workers.cli import build_parser
from workers.config import TemporalConfig, load_config
from workers.demo import demo_defaults
from workers.dev import EXIT_OK, run_demo_against, run_dev, ui_codec_proxy, with_dev_api_key
from workers.devserver import DevServerError, TemporalDevServer, port_in_use
from workers.fake_providers.local import FakeProviders, running_fake_providers
from workflows.client import workflow_id


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def dev_config(tmp_path: Path, **temporal: object):
    overrides = {
        "temporal": {
            "address": f"127.0.0.1:{free_port()}",
            "ui_port": free_port(),
            "data_dir": str(tmp_path / "data"),
            **temporal,
        },
        "api": {"port": 0},
        "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'data' / 'durapay.db'}"},
        # The 3-D Secure timeout flow, quickly (time enough to open AliPay's cashier on a busy machine).
        "payment": {"action_timeout_seconds": 4},
    }
    return load_config(environ={}, use_default_file=False, defaults=demo_defaults(), overrides=overrides)


async def test_dev_runs_the_demo_and_stops_everything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = dev_config(tmp_path)
    assert await run_dev(config, exit_after_demo=True) == EXIT_OK
    out = capsys.readouterr().out
    flows = [flow.name for plugin in PLUGINS.values() for flow in plugin.load_demo_flows()]
    assert f"{len(flows)}/{len(flows)} flows as expected" in out  # the mock's and every fake provider's
    for flow in flows:
        assert f"ok  {flow}" in out
    for gateway_id, plugin in PLUGINS.items():
        if plugin.fake is not None:
            assert f"provider     {gateway_id} (fake) at http://127.0.0.1:" in out
    assert (
        f"http://127.0.0.1:{config.temporal.ui_port}/namespaces/default/workflows/{workflow_id('pay_')}"
        in out
    )
    data = tmp_path / "data"
    assert (data / "temporal.db").stat().st_size > 0  # file persistence
    assert (data / "temporal.log").exists()
    key = (data / "dev-api-key").read_text().strip()
    assert key not in out  # the banner names the file, never the key
    host, port = config.temporal.address.split(":")
    assert not port_in_use(host, int(port))  # the dev server is gone
    assert not port_in_use(host, config.temporal.ui_port)


def test_dev_api_key_is_kept_and_private(tmp_path: Path) -> None:
    config = dev_config(tmp_path)
    first, key_file = with_dev_api_key(config)
    assert key_file is not None and key_file.stat().st_mode & 0o777 == 0o600
    again, _ = with_dev_api_key(config)
    assert first.api.api_keys["dev"].get_secret_value() == again.api.api_keys["dev"].get_secret_value()
    # The local key is the developer's own: every scope, ops (the codec server) included.
    assert first.scopes_of_key() == {"dev": {"payments:write", "payments:read", "ops"}}
    assert first.merchant_of_key() == {"dev": "default"}
    configured = load_config(
        environ={},
        use_default_file=False,
        overrides=deep_merge({"api": {"api_keys": {"mine": "x" * 20}}}, {}),
    )
    assert with_dev_api_key(configured) == (configured, None)  # configured keys win


async def test_dev_server_refuses_a_taken_port(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = TemporalDevServer(TemporalConfig(address=f"127.0.0.1:{port}", data_dir=tmp_path))
        with pytest.raises(DevServerError, match="already in use"):
            await server.start()


async def test_dev_server_exit_is_reported_with_its_log(tmp_path: Path) -> None:
    # A directory where the server's database file should be: it cannot open it and exits.
    (tmp_path / "temporal.db").mkdir()
    config = TemporalConfig(address=f"127.0.0.1:{free_port()}", ui_port=free_port(), data_dir=tmp_path)
    server = TemporalDevServer(config)
    try:
        with pytest.raises(DevServerError, match=r"exited with code .*temporal\.log"):
            await asyncio.wait_for(server.start(timeout=30), 60)
    finally:
        await server.stop()


async def test_demo_command_against_a_running_server(
    temporal_env, task_queue: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = dev_config(
        tmp_path, address=temporal_env.client.service_client.config.target_host, task_queue=task_queue
    )
    config = config.model_copy(update={"api": config.api.model_copy(update={"port": 8080})})
    assert await run_demo_against(config, fake_providers=False) == EXIT_OK
    out = capsys.readouterr().out
    assert "8/8 flows as expected" in out  # the mock's flows only
    assert "(fake)" not in out
    # A local merchant endpoint verified every webhook and lists the event types per flow.
    assert "merchant webhooks received at http://127.0.0.1:" in out and "all verified" in out
    lines = {
        line.split("  ")[1].strip(): line
        for line in out.splitlines()
        if line.startswith("  ") and "payment." in line
    }
    assert "payment.captured, payment.succeeded, refund.succeeded" in lines["partial refunds"]
    assert lines["decline"].rstrip().endswith("payment.failed")
    assert "http://127.0.0.1:8080" not in out  # its own API took an ephemeral port


async def test_fake_providers_never_replace_a_configured_gateway(tmp_path: Path) -> None:
    mine = {"enabled": True, "secret_key": "sk_live_" + "x" * 24, "webhook_secret": ["whsec_mine"]}
    config = load_config(environ={}, use_default_file=False, overrides={"payment": {"stripe": mine}})
    async with running_fake_providers(config) as (faked, fakes):
        assert "stripe" not in fakes.running
        assert faked.payment.gateways["stripe"] == mine
        wechat_pay, alipay = fakes.running["wechat_pay"], fakes.running["alipay"]
        assert isinstance(wechat_pay, FakeWechatPay) and isinstance(alipay, FakeAlipay)
        assert faked.payment.gateways["wechat_pay"]["api_base"] == wechat_pay.base_url
        assert faked.payment.gateways["alipay"]["gateway_url"] == alipay.gateway_url
        # Every other plugin's fake runs, and the banner names each one at its address.
        faked_ids = [
            gateway_id for gateway_id, plugin in PLUGINS.items() if plugin.fake and gateway_id != "stripe"
        ]
        assert list(fakes.running) == faked_ids
        assert fakes.describe() == [
            f"{gateway_id} (fake) at {fakes.running[gateway_id].url}" for gateway_id in faked_ids
        ]
    assert "wechat_pay" not in config.payment.gateways  # the user's config object is left as it was


def test_only_fakes_that_push_webhooks_are_given_the_receiver() -> None:
    stripe, wechat_pay = FakeStripe(), FakeWechatPay()
    FakeProviders({"stripe": stripe, "wechat_pay": wechat_pay}).deliver_webhooks_to(
        "http://127.0.0.1:9/webhooks"
    )
    assert stripe.webhook_url == "http://127.0.0.1:9/webhooks/stripe"
    assert not hasattr(wechat_pay, "webhook_url")  # its notifications are sent by the demo


def test_fake_providers_flag() -> None:
    parser = build_parser()
    assert parser.parse_args(["dev"]).fake_providers is True
    assert parser.parse_args(["dev", "--no-fake-providers"]).fake_providers is False
    assert parser.parse_args(["demo", "--no-fake-providers"]).fake_providers is False


def codec_config(tmp_path: Path):
    key = base64.b64encode(os.urandom(32)).decode()
    config = dev_config(tmp_path, codec_keys={"k1": key}, codec_active_key="k1")
    return with_dev_api_key(config)[0]


async def test_ui_gets_a_codec_endpoint_only_with_payload_encryption(tmp_path: Path) -> None:
    plain = with_dev_api_key(dev_config(tmp_path))[0]
    async with ui_codec_proxy(plain) as proxy:
        assert proxy is None
        assert "--ui-codec-endpoint" not in TemporalDevServer(plain.temporal).command()
    # Configured keys without the ops scope: no key to add, so the UI gets no endpoint.
    no_ops = codec_config(tmp_path).model_copy(update={"api_key_scopes": {"dev": ["payments:read"]}})
    async with ui_codec_proxy(no_ops) as proxy:
        assert proxy is None
    encrypted = codec_config(tmp_path)
    async with ui_codec_proxy(encrypted) as proxy:
        assert proxy is not None and proxy.url.startswith("http://127.0.0.1:")
        server = TemporalDevServer(encrypted.temporal, ui_codec_endpoint=proxy.url)
        command = server.command()
        assert command[command.index("--ui-codec-endpoint") + 1] == proxy.url
        await server.start()
        try:  # what the UI's pages are told
            async with aiohttp.ClientSession() as http:
                async with http.get(f"{encrypted.temporal.ui_base_url}/api/v1/settings") as resp:
                    assert (await resp.json())["Codec"]["Endpoint"] == proxy.url
        finally:
            await server.stop()


async def test_dev_with_encryption_serves_the_ui_a_codec_proxy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = codec_config(tmp_path)
    assert await run_dev(config, run_demo=False, exit_after_demo=True) == EXIT_OK
    out = capsys.readouterr().out
    banner = re.search(r"codec +the UI decodes payloads via (http://127\.0\.0\.1:\d+) .* to (\S+)", out)
    assert banner is not None, out
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/codec", banner[2])
    assert config.api.api_keys["dev"].get_secret_value() not in out
