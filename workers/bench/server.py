"""The Temporal server a bench run measures against: a dev server the harness starts itself (tuned
with `dev_server_args()` or left at its defaults), or one that is already running."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from temporalio.client import Client

import workers
from workers.temporal_binaries import (
    DEV_SERVER_DYNAMIC_CONFIG,
    dev_server_args,
    search_attribute_args,
    temporal_cli,
)

TUNED = "tuned"
UNTUNED = "untuned"
EXTERNAL = "external"

_READY_TIMEOUT_S = 60.0
_STOP_TIMEOUT_S = 10.0
# Child processes import the project by package name, whatever directory the bench runs from.
_PROJECT_ROOT = str(Path(workers.__file__).resolve().parent.parent)


@dataclass(frozen=True)
class Server:
    variant: str  # tuned, untuned or external
    address: str
    namespace: str
    pid: int | None  # None when we did not start it: its CPU cannot be measured
    dynamic_config: dict[str, str] = field(default_factory=dict)


def _free_port() -> int:
    # The port is released before the server binds it; another process could take it in between,
    # which would fail the start loudly rather than measure the wrong thing.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _wait_ready(address: str, namespace: str, process: asyncio.subprocess.Process) -> None:
    deadline = time.monotonic() + _READY_TIMEOUT_S
    while True:
        if process.returncode is not None:
            raise RuntimeError(f"temporal dev server exited with {process.returncode} while starting")
        try:
            client = await Client.connect(address, namespace=namespace)
            await client.service_client.check_health()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def dev_server(variant: str, log_path: Path) -> AsyncIterator[Server]:
    """Start `temporal server start-dev` on 127.0.0.1 (in-memory, no UI) and stop it on exit."""
    if variant not in (TUNED, UNTUNED):
        raise ValueError(f"unknown dev server variant {variant!r}")
    port = _free_port()
    args = [
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--headless",
        "--log-level",
        "error",
        *search_attribute_args(),
    ]
    if variant == TUNED:
        args += dev_server_args()
    address = f"127.0.0.1:{port}"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            temporal_cli(), *args, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log
        )
        try:
            await _wait_ready(address, "default", process)
            yield Server(
                variant=variant,
                address=address,
                namespace="default",
                pid=process.pid,
                dynamic_config=dict(DEV_SERVER_DYNAMIC_CONFIG) if variant == TUNED else {},
            )
        finally:
            await stop_process(process)


def child_env() -> dict[str, str]:
    """The environment for a Python child process of the bench (engine host, durapay stack)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_PROJECT_ROOT, env.get("PYTHONPATH")) if p)
    return env


async def stop_process(process: asyncio.subprocess.Process) -> None:
    """Terminate, then kill if it does not exit in time."""
    if process.returncode is not None:
        return
    process.terminate()
    try:
        await asyncio.wait_for(process.wait(), _STOP_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        # Bounded too: asyncio's wait() also waits for the child's pipes to close.
        await asyncio.wait_for(process.wait(), _STOP_TIMEOUT_S)


@contextlib.asynccontextmanager
async def external_server(address: str, namespace: str) -> AsyncIterator[Server]:
    client = await Client.connect(address, namespace=namespace)
    await client.service_client.check_health()
    yield Server(variant=EXTERNAL, address=address, namespace=namespace, pid=None)
