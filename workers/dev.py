"""`durapay dev`: the whole stack on one machine.

Starts the Temporal dev server (file-backed under the data dir, UI on `temporal.ui_port`), migrates
the database, runs a worker and the API in this process, runs the demo and prints its table, then
serves until Ctrl-C (or exits at once with `--exit-after-demo`), stopping everything in order: the
API first, then the worker (draining), then the Temporal server.

`durapay demo` is the same minus the Temporal server: against an already running one.

Both run the fake of every gateway plugin that has one in-process (activities/gateways/<id>/fake.py, via workers/fake_providers) for the
gateways the user did not configure, and the demo runs those providers' flows too; turned off with
`fake_providers=False` (`--no-fake-providers`).
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from pydantic import SecretStr
from temporalio.client import Client

from activities.gateways.mock import GATEWAY_ID as MOCK
from activities.gateways.mock.adapter import MockGateway
from api.auth import Scope
from api.codec_server import PREFIX as CODEC_PREFIX
from workers.codec_proxy import CodecProxy, running_codec_proxy
from workers.config import ConfigError, DurapayConfig
from workers.demo import format_table, run_demo
from workers.devserver import TemporalDevServer
from workers.fake_providers.local import FakeProviders, running_fake_providers
from workers.merchant_endpoint import demo_merchant
from workers.services import Services, running_services
from workers.worker import connect, wait_for_stop_signal

log = logging.getLogger("durapay.dev")

DEV_API_KEY_ID = "dev"
EXIT_OK = 0
EXIT_DEMO_FAILED = 1


def with_dev_api_key(config: DurapayConfig) -> tuple[DurapayConfig, Path | None]:
    """With no API key configured, use a local one kept under the data dir (0600), so that curl
    examples keep working across runs. Returns the config and the key file, if one is used."""
    if config.api.api_keys:
        return config, None
    key_file = config.temporal.data_dir / "dev-api-key"
    if key_file.exists():
        key = key_file.read_text(encoding="utf-8").strip()
    else:
        key_file.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(24)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(key + "\n")
    api = config.api.model_copy(update={"api_keys": {DEV_API_KEY_ID: SecretStr(key)}})
    # The local key is the developer's own: every scope, ops (the codec server) included.
    scopes = {**config.api_key_scopes, DEV_API_KEY_ID: [scope.value for scope in Scope]}
    return config.model_copy(update={"api": api, "api_key_scopes": scopes}), key_file


@asynccontextmanager
async def ui_codec_proxy(config: DurapayConfig) -> AsyncIterator[CodecProxy | None]:
    """With payload encryption on, the Temporal UI's codec endpoint: a loopback proxy adding an API key
    with the ops scope (the dev key has it), since the UI cannot send one. None without a codec."""
    if not config.temporal.codec_keys:
        yield None
        return
    ops = [key_id for key_id, scopes in config.scopes_of_key().items() if Scope.OPS in scopes]
    if not ops:
        log.warning("no API key has the ops scope: the Temporal UI shows payloads encrypted")
        yield None
        return
    async with running_codec_proxy(config.api.api_keys[ops[0]]) as proxy:
        yield proxy


def _mock_gateway(services: Services) -> MockGateway:
    if MOCK not in services.runtime.registry:
        raise ConfigError("the demo needs the mock gateway: set [payment.mock] enabled = true")
    gateway = services.runtime.registry.get(MOCK)
    assert isinstance(gateway, MockGateway)  # the registry builds `mock` from activities.gateways.mock
    return gateway


def _banner(
    services: Services,
    key_file: Path | None,
    server: TemporalDevServer | None,
    fakes: FakeProviders | None,
    codec_proxy: CodecProxy | None,
) -> str:
    config = services.config
    key = f"key file {key_file}" if key_file else "keys from your configuration"
    lines = [
        "durapay is running",
        f"  API          {services.base_url}/v1   (API keys: {', '.join(config.api.api_keys)}; {key})",
        f"  OpenAPI      {services.base_url}/openapi.json",
        f"  Temporal UI  {config.temporal.ui_base_url}/namespaces/{config.temporal.namespace}/workflows",
        f"  database     {config.database.display_url}",
    ]
    if server is not None:
        lines.append(
            f"  Temporal     {config.temporal.address} (log {server.log_file}, data {server.db_file})"
        )
    if codec_proxy is not None:
        lines.append(
            f"  codec        the UI decodes payloads via {codec_proxy.url} (loopback only), "
            f"which adds an ops API key and forwards to {codec_proxy.upstream}"
        )
    if fakes is not None:
        lines += [f"  provider     {line}" for line in fakes.describe()]
    return "\n".join(lines)


async def _demo_and_serve(
    client: Client,
    config: DurapayConfig,
    *,
    key_file: Path | None,
    server: TemporalDevServer | None,
    codec_proxy: CodecProxy | None = None,
    demo: bool,
    serve: bool,
    fake_providers: bool,
) -> int:
    async with AsyncExitStack() as stack:
        fakes = None
        if fake_providers:
            # Started first and stopped last: the worker's gateways talk to them until it has drained.
            config, fakes = await stack.enter_async_context(running_fake_providers(config))
        config, merchant = await stack.enter_async_context(demo_merchant(config))
        services = await stack.enter_async_context(running_services(client, config))
        if fakes is not None:
            fakes.deliver_webhooks_to(f"{services.base_url}/webhooks")
        if codec_proxy is not None:
            codec_proxy.forward_to(services.base_url + CODEC_PREFIX)
        print(_banner(services, key_file, server, fakes, codec_proxy), flush=True)
        exit_code = EXIT_OK
        if demo:
            api_key = next(iter(config.api.api_keys.values())).get_secret_value()
            print("\nrunning the demo: one payment per flow, through the HTTP API ...", flush=True)
            outcomes = await run_demo(services.base_url, api_key, _mock_gateway(services), fakes)
            print(format_table(outcomes, config.temporal.workflow_url), flush=True)
            if merchant is not None:
                await merchant.quiet()
                print(merchant.report((o.flow, o.payment_id) for o in outcomes), flush=True)
            exit_code = EXIT_OK if all(o.ok for o in outcomes) else EXIT_DEMO_FAILED
        if serve:
            print("\nserving; press Ctrl-C to stop", flush=True)
            await wait_for_stop_signal()
            print("stopping ...", flush=True)
        return exit_code


async def run_dev(
    config: DurapayConfig,
    *,
    run_demo: bool = True,
    exit_after_demo: bool = False,
    fake_providers: bool = True,
) -> int:
    config, key_file = with_dev_api_key(config)
    async with AsyncExitStack() as stack:
        # Before the dev server, which needs its URL; it learns the API's address once that listens.
        proxy = await stack.enter_async_context(ui_codec_proxy(config))
        server = TemporalDevServer(config.temporal, ui_codec_endpoint=proxy.url if proxy else None)
        await server.start()
        stack.push_async_callback(server.stop)
        # The worker runs in this process: it serves the SDK's metrics when temporal.metrics_bind is set.
        client = await connect(config, export_sdk_metrics=True)
        return await _demo_and_serve(
            client,
            config,
            key_file=key_file,
            server=server,
            codec_proxy=proxy,
            demo=run_demo,
            serve=not exit_after_demo,
            fake_providers=fake_providers,
        )


async def run_demo_against(config: DurapayConfig, *, fake_providers: bool = True) -> int:
    """`durapay demo`: worker + API in this process, against the configured Temporal server.

    The API listens on an ephemeral port (the demo is its only client), so a `durapay api` on the
    configured port is no obstacle. Another worker polling the same task queue is: the webhook
    flow settles the payment in this process's mock ledger."""
    config, key_file = with_dev_api_key(config)
    config = config.model_copy(update={"api": config.api.model_copy(update={"port": 0})})
    client = await connect(config)
    return await _demo_and_serve(
        client, config, key_file=key_file, server=None, demo=True, serve=False, fake_providers=fake_providers
    )
