"""A TCP proxy on 127.0.0.1 for tests: stands between a client and a real server (PostgreSQL, the
Temporal dev server) so that a test can cut the connection (`stop`, every open connection aborted)
and restore it (`start`, on the same port) without touching the server itself. With `ssl`, it
terminates TLS (mTLS when the context requires client certificates) and forwards the plaintext;
`sniffer` makes, per connection, a function that sees every chunk the client sent, decrypted."""

from __future__ import annotations

import asyncio
import contextlib
import ssl as ssl_module
from collections.abc import Callable


class TcpProxy:
    def __init__(
        self,
        target_port: int,
        *,
        target_host: str = "127.0.0.1",
        ssl: ssl_module.SSLContext | None = None,
        sniffer: Callable[[], Callable[[bytes], None]] | None = None,
    ) -> None:
        self._target = (target_host, target_port)
        self._ssl = ssl
        self._sniffer = sniffer
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, ssl=self._ssl)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and abort every connection: to the client, the server is gone."""
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def __aenter__(self) -> TcpProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.add(upstream_writer)
        try:
            await asyncio.gather(
                self._pipe(reader, upstream_writer, self._sniffer() if self._sniffer else None),
                self._pipe(upstream_reader, writer, None),
            )
        finally:
            for w in (writer, upstream_writer):
                w.transport.abort()
                self._writers.discard(w)
            self._tasks.discard(task)

    @staticmethod
    async def _pipe(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, sniff: Callable[[bytes], None] | None
    ) -> None:
        with contextlib.suppress(ConnectionError, ssl_module.SSLError):
            while chunk := await reader.read(65536):
                if sniff is not None:
                    sniff(chunk)
                writer.write(chunk)
                await writer.drain()
        with contextlib.suppress(ConnectionError, OSError, RuntimeError):
            writer.write_eof()
