"""A TCP proxy in front of moto (S3 + SQS) that injects the endpoint's faults while moto keeps
its state (moto holds everything in memory: stopping the real server would lose the bucket).

- `down()`: the port refuses connections and every open connection is cut, as when the
  endpoint's process or host is gone; `up()` listens again on the same port.
- `block(marker)`: HTTP requests whose head or (small) body contains `marker` (a queue's name)
  get a 503 `ServiceUnavailable` and the connection is closed, so one queue is unavailable
  while the rest of the endpoint answers.

It runs its own event loop in a daemon thread, so the test's threads can drive it."""

from __future__ import annotations

import asyncio
import contextlib
import threading

_HEAD_LIMIT = 64 * 1024
# SQS requests are small JSON bodies: those are read whole and inspected; S3 bodies stream.
_INSPECT_LIMIT = 64 * 1024
_UNAVAILABLE = b'{"__type": "com.amazonaws.sqs#ServiceUnavailable", "message": "fault injected"}'


def _header(head: bytes, name: bytes) -> bytes | None:
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            return value.strip()
    return None


class FaultProxy:
    def __init__(self, upstream_port: int, port: int) -> None:
        self.upstream_port = upstream_port
        self.port = port
        self.blocked: set[bytes] = set()
        self.refused = 0  # requests answered 503 by block()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.up()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(30)

    def up(self) -> None:
        self._call(self._listen())

    def down(self) -> None:
        self._call(self._close())

    def block(self, marker: bytes) -> None:
        self.blocked.add(marker)

    def unblock(self, marker: bytes) -> None:
        self.blocked.discard(marker)

    def close(self) -> None:
        self.down()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(
                self._client, "127.0.0.1", self.port, reuse_address=True
            )

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.transport.abort()
            self._writers.discard(writer)
            return
        self._writers.add(up_writer)
        back = asyncio.create_task(self._pipe(up_reader, writer))
        try:
            await self._requests(reader, up_writer, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            back.cancel()
            with contextlib.suppress(BaseException):
                await back
            for w in (writer, up_writer):
                w.transport.abort()
                self._writers.discard(w)

    async def _requests(self, reader, up_writer, writer) -> None:
        """Forward request after request; inspect the small ones for a blocked marker."""
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            if len(head) > _HEAD_LIMIT:
                return
            if (_header(head, b"transfer-encoding") or b"").lower() == b"chunked":
                # Not framed by length: stop inspecting, pass the rest through.
                up_writer.write(head)
                await self._pipe(reader, up_writer)
                return
            length = int(_header(head, b"content-length") or b"0")
            expect = _header(head, b"expect") is not None
            if length <= _INSPECT_LIMIT and not expect:
                body = await reader.readexactly(length) if length else b""
                if any(m in head or m in body for m in self.blocked):
                    self.refused += 1
                    writer.write(
                        b"HTTP/1.1 503 Service Unavailable\r\n"
                        b"Content-Type: application/x-amz-json-1.0\r\n"
                        b"Connection: close\r\n"
                        b"Content-Length: "
                        + str(len(_UNAVAILABLE)).encode()
                        + b"\r\n\r\n"
                        + _UNAVAILABLE
                    )
                    await writer.drain()
                    return
                up_writer.write(head + body)
                await up_writer.drain()
                continue
            up_writer.write(head)
            while length:
                chunk = await reader.read(min(length, 256 * 1024))
                if not chunk:
                    return
                length -= len(chunk)
                up_writer.write(chunk)
                await up_writer.drain()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while chunk := await reader.read(256 * 1024):
                writer.write(chunk)
                await writer.drain()
        with contextlib.suppress(OSError):
            writer.write_eof()
