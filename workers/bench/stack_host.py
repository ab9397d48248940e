"""The processes a durapay scenario measures, on the mock gateway with no added latency unless the
scenario points a gateway at a fake provider (`StackSpec.gateways`). One role per process:

- `one`: the real worker and the real API in one process (the `durapay dev` layout, see
  `workers.services`);
- `api` / `worker`: the production shape, `durapay api` and `durapay worker` as separate processes
  (`run_api` / `run_worker`, the entry points the CLI calls); the `api` process first migrates the
  database, as `durapay migrate` does once per release.

`python -m workers.bench.stack_host` reads a `StackSpec` as JSON on stdin, prints one JSON line
`{"base_url": ...}` on stdout once its HTTP endpoint answers (`/readyz` for the API and the worker,
whose health endpoint a split layout serves on `[worker] health_bind`), and serves until SIGTERM.
Secrets travel on stdin, never in argv or the environment where other processes could read them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any, Literal

import httpx
from pydantic import BaseModel, SecretStr

from workers.api_server import run_api
from workers.config import DurapayConfig, load_config
from workers.services import running_services
from workers.worker import connect, prepare_database, run_worker, wait_for_stop_signal

API_KEY_ID = "bench"
Role = Literal["one", "api", "worker"]
_READY_POLL_S = 0.1
_READY_TIMEOUT_S = 90.0


class StackSpec(BaseModel):
    role: Role = "one"
    address: str
    namespace: str
    task_queue: str
    database_url: SecretStr
    api_key: SecretStr
    webhook_secret: SecretStr
    # The `[event_proof]` key the bench also holds: its direct-signal phase sends proven events,
    # as the receiver does.
    event_proof_key: SecretStr
    decide_timeout_s: float
    # Extra `[payment.<id>]` sections (a fake provider's, from its `gateway_section()`) and the
    # gateway new payments use; the mock's otherwise.
    gateways: dict[str, dict[str, Any]] = {}
    default_gateway: str = "mock"
    action_timeout_s: int | None = None  # `payment.action_timeout_seconds`; None: durapay's default


def spec_line(spec: StackSpec) -> bytes:
    """The spec as the host reads it: one JSON line, secrets in clear (it goes through a pipe)."""
    data = spec.model_dump(mode="json")
    for key in ("database_url", "api_key", "webhook_secret", "event_proof_key"):
        data[key] = getattr(spec, key).get_secret_value()
    return json.dumps(data).encode() + b"\n"


def config_for(spec: StackSpec, *, api_port: int = 0, health_bind: str | None = None) -> DurapayConfig:
    """Defaults everywhere except what a benchmark must pin: where things are, the mock gateway,
    and no API rate limit (it would cap the load, not measure it). Fraud check, automatic capture
    and order confirmation stay on, as the issue's happy card payment has them."""
    overrides = {
        "temporal": {"address": spec.address, "namespace": spec.namespace, "task_queue": spec.task_queue},
        "database": {"url": spec.database_url.get_secret_value()},
        "api": {
            "host": "127.0.0.1",
            "port": api_port,
            "api_keys": {API_KEY_ID: spec.api_key.get_secret_value()},
            "rate_limiting": False,
            "decide_timeout_seconds": spec.decide_timeout_s,
        },
        "worker": {"health_bind": health_bind},
        "event_proof": {
            "keys": {API_KEY_ID: spec.event_proof_key.get_secret_value()},
            "active_key": API_KEY_ID,
        },
        "payment": {
            "default_gateway": spec.default_gateway,
            "auto_capture": True,
            "enable_fraud_check": True,
            **({"action_timeout_seconds": spec.action_timeout_s} if spec.action_timeout_s else {}),
            "mock": {
                "enabled": True,
                "latency_ms": 0,
                "webhook_secret": spec.webhook_secret.get_secret_value(),
            },
            **spec.gateways,
        },
    }
    # The developer's durapay.toml and DURAPAY_* variables must not change what is measured.
    return load_config(environ={}, use_default_file=False, overrides=overrides)


def _announce(base_url: str) -> None:
    sys.stdout.write(json.dumps({"base_url": base_url}) + "\n")
    sys.stdout.flush()
    # From now on stdout goes where stderr goes (the log). The SDK core logs its warnings to
    # stdout; nobody reads that pipe after the first line, and once full it would block the
    # core's threads and with them the worker.
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())


async def _serve_one(spec: StackSpec) -> None:
    config = config_for(spec)
    client = await connect(config)
    async with running_services(client, config, task_queue=spec.task_queue) as services:
        _announce(services.base_url)
        await wait_for_stop_signal()


def _free_port() -> int:
    # Released before the process binds it; a thief in between fails the start loudly.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _serve_until_ready(serve: Callable[[], Coroutine[Any, Any, None]], base_url: str) -> None:
    """Run a CLI entry point; announce `base_url` once its /readyz says 200; serve until it returns."""
    served = asyncio.create_task(serve())
    deadline = time.monotonic() + _READY_TIMEOUT_S
    async with httpx.AsyncClient(timeout=5) as http:
        while True:
            if served.done():
                served.result()  # raises what stopped it
                raise RuntimeError("stopped before it was ready")
            try:
                if (await http.get(f"{base_url}/readyz")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{base_url}/readyz not ready after {_READY_TIMEOUT_S:g} s")
            await asyncio.sleep(_READY_POLL_S)
    _announce(base_url)
    await served


async def serve(spec: StackSpec) -> None:
    if spec.role == "one":
        await _serve_one(spec)
        return
    port = _free_port()
    if spec.role == "api":
        config = config_for(spec, api_port=port)
        await prepare_database(config)
        await _serve_until_ready(lambda: run_api(config), f"http://127.0.0.1:{port}")
    else:
        config = config_for(spec, health_bind=f"127.0.0.1:{port}")
        await _serve_until_ready(lambda: run_worker(config), f"http://127.0.0.1:{port}")


def main() -> None:
    # INFO, as `durapay api` and `durapay worker` log by default: the access log is part of the cost.
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(serve(StackSpec.model_validate_json(sys.stdin.readline())))


if __name__ == "__main__":
    main()
