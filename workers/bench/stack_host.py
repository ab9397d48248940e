"""The process a durapay scenario measures: the real worker and the real API in one process (the
`durapay dev` layout, see `workers.services`), on the mock gateway with no added latency.

`python -m workers.bench.stack_host` reads a `StackSpec` as JSON on stdin, prints one JSON line
`{"base_url": ...}` on stdout once the API answers, and serves until SIGTERM. Secrets travel on
stdin, never in argv or the environment where other processes could read them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys

from pydantic import BaseModel, SecretStr

from workers.config import DurapayConfig, load_config
from workers.services import running_services
from workers.worker import connect, wait_for_stop_signal

API_KEY_ID = "bench"


class StackSpec(BaseModel):
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


def spec_line(spec: StackSpec) -> bytes:
    """The spec as the host reads it: one JSON line, secrets in clear (it goes through a pipe)."""
    data = spec.model_dump(mode="json")
    for key in ("database_url", "api_key", "webhook_secret", "event_proof_key"):
        data[key] = getattr(spec, key).get_secret_value()
    return json.dumps(data).encode() + b"\n"


def config_for(spec: StackSpec) -> DurapayConfig:
    """Defaults everywhere except what a benchmark must pin: where things are, the mock gateway,
    and no API rate limit (it would cap the load, not measure it). Fraud check, automatic capture
    and order confirmation stay on, as the issue's happy card payment has them."""
    overrides = {
        "temporal": {"address": spec.address, "namespace": spec.namespace, "task_queue": spec.task_queue},
        "database": {"url": spec.database_url.get_secret_value()},
        "api": {
            "host": "127.0.0.1",
            "port": 0,
            "api_keys": {API_KEY_ID: spec.api_key.get_secret_value()},
            "rate_limiting": False,
            "decide_timeout_seconds": spec.decide_timeout_s,
        },
        "event_proof": {
            "keys": {API_KEY_ID: spec.event_proof_key.get_secret_value()},
            "active_key": API_KEY_ID,
        },
        "payment": {
            "default_gateway": "mock",
            "auto_capture": True,
            "enable_fraud_check": True,
            "mock": {
                "enabled": True,
                "latency_ms": 0,
                "webhook_secret": spec.webhook_secret.get_secret_value(),
            },
        },
    }
    # The developer's durapay.toml and DURAPAY_* variables must not change what is measured.
    return load_config(environ={}, use_default_file=False, overrides=overrides)


async def serve(spec: StackSpec) -> None:
    config = config_for(spec)
    client = await connect(config)
    async with running_services(client, config, task_queue=spec.task_queue) as services:
        sys.stdout.write(json.dumps({"base_url": services.base_url}) + "\n")
        sys.stdout.flush()
        # From now on stdout goes where stderr goes (the log). The SDK core logs its warnings to
        # stdout; nobody reads that pipe after the first line, and once full it would block the
        # core's threads and with them the worker.
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
        await wait_for_stop_signal()


def main() -> None:
    # INFO, as `durapay api` and `durapay worker` log by default: the access log is part of the cost.
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(serve(StackSpec.model_validate_json(sys.stdin.readline())))


if __name__ == "__main__":
    main()
