"""`durapay worker` and `durapay api` as separate processes, as a deployment runs them: a payment
made through one process's HTTP API is executed by the other's worker; both report ready (the
worker on its health listener); SIGTERM stops both cleanly. The worker logs JSON lines
(`[logging] format`), the API text (`--log-format text` wins over the key)."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import socket
import sys
from pathlib import Path

import httpx
from temporalio.testing import WorkflowEnvironment


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_worker_and_api_processes(
    temporal_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, unique: str
) -> None:
    api_key = secrets.token_urlsafe(24)
    port, health_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("DURAPAY_")}
    env |= {
        "DURAPAY_TEMPORAL__ADDRESS": temporal_env.client.service_client.config.target_host,
        "DURAPAY_TEMPORAL__TASK_QUEUE": task_queue,
        "DURAPAY_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path / 'durapay.db'}",
        "DURAPAY_PAYMENT__MOCK__ENABLED": "true",
        "DURAPAY_API_KEYS": f"merchant:{api_key}",
        "DURAPAY_API__PORT": str(port),
        "DURAPAY_WORKER__HEALTH_BIND": f"127.0.0.1:{health_port}",
        "DURAPAY_LOGGING__FORMAT": "json",
    }

    async def start(*command: str) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "workers.cli",
            *command,
            cwd=tmp_path,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )

    # A deployment migrates once, before starting the processes.
    migrate = await start("migrate")
    assert await migrate.wait() == 0, (await migrate.stdout.read()).decode()

    worker, api = await start("worker"), await start("--log-format", "text", "api")
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            for _ in range(300):
                try:
                    if (await http.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert api.returncode is None, (await api.stdout.read()).decode()
                await asyncio.sleep(0.1)
            created = await http.post(
                "/v1/payments",
                json={
                    "order_id": f"o-{unique}",
                    "currency": "EUR",
                    "amount": "10.00",
                    "payment_method": {"type": "card", "token": "tok_visa"},
                },
                headers={"Authorization": f"Bearer {api_key}", "Idempotency-Key": unique},
            )
        assert created.status_code == 201, created.text
        assert created.json()["status"] == "paid"
        async with httpx.AsyncClient(timeout=10) as http:
            for base_url in (f"http://127.0.0.1:{port}", f"http://127.0.0.1:{health_port}"):
                ready = await http.get(f"{base_url}/readyz")
                assert ready.status_code == 200, ready.text
            checks = (await http.get(f"http://127.0.0.1:{health_port}/readyz")).json()["checks"]
            assert checks == {"database": "ok", "temporal": "ok", "worker": "ok"}
    finally:
        for process in (api, worker):
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
    outputs = [(await process.communicate())[0].decode() for process in (api, worker)]
    assert api.returncode == 0, outputs[0]
    assert worker.returncode == 0, outputs[1]
    assert "API listening on" in outputs[0]
    worker_log = [json.loads(line) for line in outputs[1].splitlines()]  # every line is JSON
    assert any(entry["message"].startswith(f"worker polling {task_queue}") for entry in worker_log)
    assert any(entry["message"].startswith("health at ") for entry in worker_log)
    assert api_key not in "".join(outputs)
