"""The child processes the fault suite starts, kills and restarts: the Temporal dev server with file
persistence, `durapay worker`, and a private PostgreSQL instance.

Every child runs under `setpriv --pdeathsig KILL`, so it dies with the test process even when that
process is itself killed (a timeout in CI, Ctrl-C twice): a failed run leaves nothing behind. The
fixtures stop them in order otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import psycopg
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError

from workers.temporal_binaries import (
    dev_server_args,
    search_attribute_args,
    temporal_cli,
)

_SETPRIV = shutil.which("setpriv")
POLL_S = 0.05


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ChildProcess:
    """One child process, restartable; its output goes to a log file that spans restarts."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        user: str | None = None,
    ) -> None:
        self.name = name
        self.command = list(command)
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.user = user
        self._process: asyncio.subprocess.Process | None = None
        self.starts = 0

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return f"({self.name}: no log)"
        text = self.log_path.read_text(errors="replace").splitlines()
        return f"--- last lines of {self.log_path} ---\n" + "\n".join(text[-lines:])

    async def start(self) -> None:
        assert not self.running, f"{self.name} is already running"
        # The privilege drop (`user`) happens before setpriv runs, so the death signal it sets is
        # not cleared by the uid change.
        command = [_SETPRIV, "--pdeathsig", "KILL", "--", *self.command] if _SETPRIV else self.command
        with self.log_path.open("ab") as log:
            self._process = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=self.env,
                cwd=self.cwd,
                user=self.user,
                group=self.user,
                extra_groups=[] if self.user else None,
                # Its own process group: a Ctrl-C in the terminal reaches pytest, which then stops
                # the children in order.
                start_new_session=True,
            )
        self.starts += 1

    async def kill(self) -> None:
        """kill -9: no shutdown hooks, no draining, in-flight work simply vanishes."""
        await self.signal(signal.SIGKILL, timeout=30)

    async def signal(self, sig: int, *, timeout: float) -> int | None:
        """Send `sig` and wait for the exit (SIGKILL after `timeout`). The exit code, or None if
        the process was not running."""
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return None if process is None else process.returncode
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(sig)
        try:
            return await asyncio.wait_for(process.wait(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            return await process.wait()

    async def wait(self, *, timeout: float) -> int:
        """Wait for a process that ends by itself (initdb); its exit code."""
        process, self._process = self._process, None
        assert process is not None, f"{self.name} was not started"
        try:
            return await asyncio.wait_for(process.wait(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            raise TimeoutError(
                f"{self.name} did not finish within {timeout:.0f}s\n{self.log_tail()}"
            ) from None

    async def wait_for_output(self, text: str, *, after: int, timeout: float) -> None:
        """Wait until `text` appears in the log past byte offset `after`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        needle = text.encode()
        while True:
            with self.log_path.open("rb") as log:
                log.seek(after)
                if needle in log.read():
                    return
            if not self.running:
                raise RuntimeError(f"{self.name} exited before printing {text!r}\n{self.log_tail()}")
            if loop.time() > deadline:
                raise TimeoutError(
                    f"{self.name} did not print {text!r} within {timeout:.0f}s\n{self.log_tail()}"
                )
            await asyncio.sleep(POLL_S)


class TemporalServer:
    """`temporal server start-dev` on its own ports with a database file, so that it can be
    crashed and started again with every workflow, timer and task queue intact."""

    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.db_file = data_dir / "temporal.db"
        command = [
            temporal_cli(),
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--http-port",
            str(free_port()),
            "--db-filename",
            str(self.db_file),
            "--headless",  # no UI: one process less competing for the CPU
            "--log-level",
            "warn",
            *dev_server_args(),
            *search_attribute_args(),
        ]
        self.process = ChildProcess("temporal", command, log_path=data_dir / "temporal.log")

    async def start(self, timeout: float = 60.0) -> None:
        await self.process.start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                client = await Client.connect(self.address, data_converter=pydantic_data_converter)
                # The frontend answers before the namespace is loaded; wait for both.
                await client.workflow_service.describe_namespace(
                    DescribeNamespaceRequest(namespace="default")
                )
                return
            except (RuntimeError, RPCError):  # not up yet: connection refused, namespace not found
                if not self.process.running:
                    raise RuntimeError(f"the Temporal dev server exited\n{self.process.log_tail()}") from None
                if loop.time() > deadline:
                    raise TimeoutError(f"Temporal did not come up\n{self.process.log_tail()}") from None
                await asyncio.sleep(0.1)

    async def crash(self) -> None:
        await self.process.kill()

    async def stop(self) -> None:
        await self.process.signal(signal.SIGTERM, timeout=15)


class WorkerProcess:
    """`durapay worker`, configured through `DURAPAY_*` variables like a deployment."""

    READY = "worker polling"

    def __init__(self, env: Mapping[str, str], workdir: Path) -> None:
        # Nothing of the developer's own configuration may leak in.
        base = {k: v for k, v in os.environ.items() if not k.upper().startswith("DURAPAY_")}
        self.process = ChildProcess(
            "durapay worker",
            [sys.executable, "-m", "workers.cli", "worker"],
            log_path=workdir / "worker.log",
            env={**base, **env, "PYTHONUNBUFFERED": "1"},
            cwd=workdir,  # no ./durapay.toml here
        )

    async def start(self, timeout: float = 90.0) -> None:
        offset = self.process.log_size()
        await self.process.start()
        await self.process.wait_for_output(self.READY, after=offset, timeout=timeout)

    async def kill(self) -> None:
        await self.process.kill()

    async def stop(self) -> int | None:
        """SIGTERM: the worker drains (see workers.worker.run_worker) and exits 0."""
        return await self.process.signal(signal.SIGTERM, timeout=30)


def postgres_binaries() -> Path | None:
    """The newest Debian PostgreSQL bin directory with initdb and postgres, if installed."""
    found = [
        path
        for path in Path("/usr/lib/postgresql").glob("*/bin")
        if (path / "initdb").exists() and (path / "postgres").exists()
    ]
    return max(found, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0, default=None)


def private_postgres_unavailable() -> str | None:
    """Why a private PostgreSQL instance cannot be started here (None: it can)."""
    if postgres_binaries() is None:
        return "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no `postgres` user to run PostgreSQL as"
    return None


class PrivatePostgres:
    """A PostgreSQL instance of our own (initdb in a temporary directory, a free port), so that
    stopping it disturbs nobody else's tests. PostgreSQL refuses to run as root: as root it runs
    as the `postgres` user."""

    DATABASE = "durapay"

    def __init__(self) -> None:
        binaries = postgres_binaries()
        assert binaries is not None, private_postgres_unavailable()
        self.bin = binaries
        self.port = free_port()
        self.user = "postgres" if os.geteuid() == 0 else None
        # Under /tmp, not pytest's tmp_path: that one is root-only, and the server runs as postgres.
        self.root = Path(tempfile.mkdtemp(prefix="durapay-faults-pg-"))
        if self.user:
            account = pwd.getpwnam(self.user)
            os.chown(self.root, account.pw_uid, account.pw_gid)
        self.data = self.root / "data"
        command = [
            str(self.bin / "postgres"),
            "-D",
            str(self.data),
            "-p",
            str(self.port),
            "-k",
            str(self.root),
            "-c",
            "listen_addresses=127.0.0.1",
            # Test data: no need to wait for the disk (the instance is stopped cleanly, not crashed).
            "-c",
            "fsync=off",
            "-c",
            "max_connections=100",
        ]
        self.process = ChildProcess("postgres", command, log_path=self.root / "postgres.log", user=self.user)
        self.admin_dsn = f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{self.DATABASE}"

    async def init(self) -> None:
        initdb = ChildProcess(
            "initdb",
            [
                str(self.bin / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            log_path=self.root / "initdb.log",
            user=self.user,
        )
        await initdb.start()
        code = await initdb.wait(timeout=120)
        if code != 0:
            raise RuntimeError(f"initdb failed ({code})\n{initdb.log_tail()}")
        await self.start()
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.DATABASE}"')

    async def start(self, timeout: float = 60.0) -> None:
        await self.process.start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                psycopg.connect(self.admin_dsn, connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if not self.process.running:
                    raise RuntimeError(f"PostgreSQL exited\n{self.process.log_tail()}") from None
                if loop.time() > deadline:
                    raise TimeoutError(f"PostgreSQL did not come up\n{self.process.log_tail()}") from None
                await asyncio.sleep(0.1)

    async def stop(self) -> None:
        """A fast shutdown (SIGINT): every client connection is cut, as in a failover."""
        await self.process.signal(signal.SIGINT, timeout=30)

    async def destroy(self) -> None:
        await self.process.signal(signal.SIGQUIT, timeout=15)
        shutil.rmtree(self.root, ignore_errors=True)
