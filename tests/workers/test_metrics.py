"""Observability wired from the configuration: with `[api] metrics`, `[worker] metrics_bind` and
`[temporal] metrics_bind`, one payment through the stack moves the API's, the gateways' and the
Temporal SDK's metrics, each scraped over HTTP, in one process (the dev stack) and in the separate
processes of a deployment; all three are off by default."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import signal
import socket
import sys

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.observability import alert_queries, dashboard_queries, metric_names
from tests.stack import running_stack
from workers.config import ConfigError, load_config, parse_bind
from workers.worker import connect
from workflows.client import workflow_id


def free_port() -> int:
    """A port nothing listens on: Temporal's exporter cannot be asked for an ephemeral one and tell."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def scrape(http: httpx.AsyncClient, url: str) -> dict[tuple[str, frozenset], float]:
    response = await http.get(url)
    assert response.status_code == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def label_values(samples: dict) -> set[str]:
    """Every label value in a scrape. Sample values (latencies, sizes) can print any digits, so
    what must never be a label is looked for here, not in the whole exposition."""
    return {value for (_, pairs) in samples for _, value in pairs}


def total(samples: dict, name: str, **labels: str) -> float:
    """The sum over every series of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, pairs), v in samples.items() if n == name and wanted <= pairs)


async def test_one_payment_moves_api_gateway_and_temporal_metrics(
    temporal_env, task_queue, sqlite_url, unique
) -> None:
    sdk_bind = f"127.0.0.1:{free_port()}"
    address = temporal_env.client.service_client.config.target_host
    client = await connect(
        load_config(
            environ={},
            use_default_file=False,
            overrides={"temporal": {"address": address, "metrics_bind": sdk_bind}},
        ),
        export_sdk_metrics=True,
    )
    overrides = {"api": {"metrics": True}, "worker": {"metrics_bind": "127.0.0.1:0"}}
    async with (
        running_stack(client, task_queue=task_queue, db_url=sqlite_url, config_overrides=overrides) as stack,
        stack.http() as http,
    ):
        created = await http.post(
            "/v1/payments",
            json={
                "order_id": f"order-{unique}",
                "amount": "49.99",
                "currency": "USD",
                "payment_method": {"type": "card", "token": "tok_visa"},
                "customer_email": f"{unique}@example.com",
            },
            headers=stack.headers(unique),
        )
        assert created.status_code == 201, created.text
        payment_id = created.json()["id"]

        api = await scrape(http, f"{stack.base_url}/metrics")
        assert stack.gateway_metrics_url is not None
        for _ in range(100):  # the payment's end is recorded by a local activity, maybe just after the answer
            gateway = await scrape(http, f"{stack.gateway_metrics_url}/metrics")
            if total(gateway, "durapay_payments_total"):
                break
            await asyncio.sleep(0.05)
        sdk = await scrape(http, f"http://{sdk_bind}/metrics")

    assert total(api, "durapay_api_requests_total", method="POST", route="/v1/payments", status="201") == 1
    assert total(api, "durapay_payment_decisions_total", status="paid") == 1
    assert (
        total(gateway, "durapay_gateway_calls_total", gateway="mock", operation="authorize", outcome="ok")
        == 1
    )
    assert (
        total(gateway, "durapay_gateway_call_duration_seconds_count", gateway="mock", operation="authorize")
        == 1
    )
    # The payment's end, counted by the worker that recorded it, next to its gateway calls.
    assert total(gateway, "durapay_payments_total", gateway="mock", outcome="paid") == 1
    assert total(gateway, "durapay_payment_processing_seconds_count", gateway="mock", outcome="paid") == 1
    assert ("durapay_payments_waiting", frozenset({("status", "outcome_unknown")})) in gateway
    # The SDK's own: this worker's workflow and activity tasks, by task queue.
    assert total(sdk, "temporal_workflow_task_execution_latency_count", task_queue=task_queue) >= 1
    assert total(sdk, "temporal_activity_execution_latency_count", task_queue=task_queue) >= 1
    # Every SDK metric the dashboard and the alert rules query is one this SDK really exports.
    queried = {
        n
        for n in metric_names(dashboard_queries()) | metric_names(alert_queries())
        if n.startswith("temporal_")
    }
    assert queried <= {name for name, _ in sdk}, queried - {name for name, _ in sdk}
    # Nothing from the request is a label: neither the payment, the customer nor the amount.
    for samples in (api, gateway):
        assert not [v for v in label_values(samples) if payment_id in v or unique in v or "49.99" in v]


async def test_metrics_are_off_by_default(temporal_env, task_queue, sqlite_url) -> None:
    async with running_stack(temporal_env.client, task_queue=task_queue, db_url=sqlite_url) as stack:
        assert stack.gateway_metrics_url is None
        assert stack.config.temporal.metrics_bind is None
        async with stack.http() as http:
            assert (await http.get("/metrics")).status_code == 404


def test_bind_addresses() -> None:
    assert parse_bind("127.0.0.1:9464") == ("127.0.0.1", 9464)
    assert parse_bind("[::1]:0") == ("::1", 0)
    for bad in ("9464", ":9464", "host:port", "127.0.0.1:70000"):
        with pytest.raises(ValueError):
            parse_bind(bad)
    with pytest.raises(ConfigError, match=r"worker\.metrics_bind"):
        load_config(environ={"DURAPAY_WORKER__METRICS_BIND": "9465"}, use_default_file=False)


async def test_deployed_processes_serve_their_metrics_and_share_the_codec(
    temporal_env, task_queue, tmp_path, unique
) -> None:
    """`durapay worker` and `durapay api` as separate processes, configured as a deployment would:
    the API encrypts what the worker decrypts, and each serves the metrics it owns."""
    api_key = secrets.token_urlsafe(24)
    api_port, sdk_port, gateway_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("DURAPAY_")}
    env |= {
        "DURAPAY_TEMPORAL__ADDRESS": temporal_env.client.service_client.config.target_host,
        "DURAPAY_TEMPORAL__TASK_QUEUE": task_queue,
        "DURAPAY_TEMPORAL__METRICS_BIND": f"127.0.0.1:{sdk_port}",
        "DURAPAY_TEMPORAL__CODEC_KEYS": json.dumps({"2026": base64.b64encode(os.urandom(32)).decode()}),
        "DURAPAY_TEMPORAL__CODEC_ACTIVE_KEY": "2026",
        "DURAPAY_WORKER__METRICS_BIND": f"127.0.0.1:{gateway_port}",
        "DURAPAY_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path / 'durapay.db'}",
        "DURAPAY_PAYMENT__MOCK__ENABLED": "true",
        "DURAPAY_API_KEYS": f"merchant:{api_key}",
        "DURAPAY_API__PORT": str(api_port),
        "DURAPAY_API__METRICS": "true",
    }

    async def start(command: str) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "workers.cli",
            command,
            cwd=tmp_path,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )

    migrate = await start("migrate")
    assert await migrate.wait() == 0, (await migrate.stdout.read()).decode()
    worker, api = await start("worker"), await start("api")
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            for _ in range(300):
                try:
                    if (await http.get(f"http://127.0.0.1:{api_port}/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert api.returncode is None and worker.returncode is None
                await asyncio.sleep(0.1)
            created = await http.post(
                f"http://127.0.0.1:{api_port}/v1/payments",
                json={
                    "order_id": f"o-{unique}",
                    "currency": "EUR",
                    "amount": "10.00",
                    "payment_method": {"type": "card", "token": "tok_visa"},
                    "customer_email": f"{unique}@example.com",
                },
                headers={"Authorization": f"Bearer {api_key}", "Idempotency-Key": unique},
            )
            assert created.status_code == 201, created.text
            api_samples = await scrape(http, f"http://127.0.0.1:{api_port}/metrics")
            gateway_samples = await scrape(http, f"http://127.0.0.1:{gateway_port}/metrics")
            sdk_samples = await scrape(http, f"http://127.0.0.1:{sdk_port}/metrics")
    finally:
        for process in (api, worker):
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
    outputs = [(await process.communicate())[0].decode() for process in (api, worker)]
    assert (api.returncode, worker.returncode) == (0, 0), outputs
    assert total(api_samples, "durapay_payment_decisions_total", status="paid") == 1
    assert total(gateway_samples, "durapay_gateway_calls_total", operation="authorize", outcome="ok") == 1
    assert total(sdk_samples, "temporal_workflow_task_execution_latency_count", task_queue=task_queue) >= 1
    assert "payloads encrypted" in outputs[1] and "codec server at" in outputs[0]
    history = await temporal_env.client.get_workflow_handle(workflow_id(created.json()["id"])).fetch_history()
    stored = b"".join(event.SerializeToString() for event in history.events)
    assert f"o-{unique}".encode() in stored  # the order id, a search attribute: the scan read something
    assert f"{unique}@example.com".encode() not in stored
