"""The Temporal dev server as a child process of `durapay dev`: the pinned CLI binary, file
persistence under the data dir, our search attributes and dynamic config, logs to a file."""

from __future__ import annotations

import asyncio
import contextlib
import socket

from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from workers.config import TemporalConfig
from workers.temporal_binaries import dev_server_args, search_attribute_args, temporal_cli


class DevServerError(RuntimeError):
    """The dev server did not come up; the message points at its log."""


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise DevServerError(f"temporal.address {address!r} is not host:port")
    return host, int(port)


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


class TemporalDevServer:
    """`temporal server start-dev` for one `durapay dev` session."""

    def __init__(self, config: TemporalConfig, *, ui_codec_endpoint: str | None = None) -> None:
        self.config = config
        self.ui_codec_endpoint = ui_codec_endpoint  # where the UI decodes payloads (workers/codec_proxy.py)
        self.host, self.port = split_address(config.address)
        self.data_dir = config.data_dir
        self.db_file = self.data_dir / "temporal.db"
        self.log_file = self.data_dir / "temporal.log"
        self._process: asyncio.subprocess.Process | None = None

    def command(self) -> list[str]:
        args = [
            temporal_cli(),
            "server",
            "start-dev",
            "--ip",
            self.host,
            "--port",
            str(self.port),
            "--ui-port",
            str(self.config.ui_port),
            "--db-filename",
            str(self.db_file),
            # The UI otherwise fetches a newsfeed from the internet on every page load.
            "--ui-disable-news-fetch",
            "--log-level",
            "warn",
        ]
        if self.config.namespace != "default":
            args += ["--namespace", self.config.namespace]
        if self.ui_codec_endpoint is not None:
            args += ["--ui-codec-endpoint", self.ui_codec_endpoint]
        return args + dev_server_args() + search_attribute_args()

    async def start(self, timeout: float = 60.0) -> None:
        for port, what in ((self.port, "temporal.address"), (self.config.ui_port, "temporal.ui_port")):
            if port_in_use(self.host, port):
                raise DevServerError(
                    f"{self.host}:{port} is already in use ({what}): is another `durapay dev` "
                    "running? Stop it, or pick other ports, e.g. DURAPAY_TEMPORAL__ADDRESS="
                    "127.0.0.1:7300 DURAPAY_TEMPORAL__UI_PORT=8300"
                )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            self._process = await asyncio.create_subprocess_exec(
                *self.command(),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                # Its own process group: Ctrl-C in the terminal reaches durapay only, which then
                # stops the server in order (after the worker has drained).
                start_new_session=True,
            )
        await self._wait_ready(timeout)

    async def _wait_ready(self, timeout: float) -> None:
        assert self._process is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if self._process.returncode is not None:
                raise DevServerError(
                    f"the Temporal dev server exited with code {self._process.returncode}; "
                    f"see {self.log_file}"
                )
            try:
                client = await Client.connect(
                    self.config.address,
                    namespace=self.config.namespace,
                    data_converter=pydantic_data_converter,
                )
                # The frontend answers before the namespace is registered; wait for both.
                await client.workflow_service.describe_namespace(
                    DescribeNamespaceRequest(namespace=self.config.namespace)
                )
                return
            except Exception:  # not up yet: connection refused, namespace not found
                if loop.time() > deadline:
                    await self.stop()
                    raise DevServerError(
                        f"the Temporal dev server did not answer on {self.config.address} within "
                        f"{timeout:.0f}s; see {self.log_file}"
                    ) from None
                await asyncio.sleep(0.25)

    async def stop(self, timeout: float = 15.0) -> None:
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
