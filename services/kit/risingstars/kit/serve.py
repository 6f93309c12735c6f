"""Run an ASGI app under uvicorn with Kubernetes-friendly shutdown and bounded request buffers.

On SIGTERM readiness fails at once while requests are still served for `drain_seconds` (the
endpoint's removal from Services and the load balancer races the signal); then uvicorn stops
accepting and waits up to `shutdown_timeout_seconds` for in-flight requests.

Each connection reads at most READ_BYTES from its socket at a time and stops reading while
request body it read waits for the app: what a fast client sends beyond that one read waits in
the kernel's socket buffer (flow control), not in the process. uvicorn alone reads up to
256 KiB per receive and pauses past 64 KiB, so a connection could hold 320 KiB: 300 uploads
arriving faster than the app consumes them held about 95 MB. A request's first read is smaller
still (HEAD_READ_BYTES: its headers and the start of its body), so a request the app has not
started reading (an upload waiting for admission) holds a few KiB of body, not a whole read:
300 waiting uploads held 10 MB less.

An answer given before the body was read (503 busy, 408, 429) to a client that asked for
`Connection: close` would end in a TCP reset: closing a socket with unread bytes in it resets
the connection, and the client, still sending, loses the answer. Such a close is lingering
instead (as nginx's): the answer is sent, the write side shut, and the rest of the body read
and dropped until the client closes or LINGER_SECONDS pass.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from risingstars.kit.settings import HTTPSettings

READ_BYTES = 32 * 1024
# Until the app reads a request's body: room for the request line, headers and a bearer token.
HEAD_READ_BYTES = 4 * 1024
# How long a connection closed while its request body still arrives keeps reading (and
# dropping) that body after its answer, so the client reads the answer instead of a reset.
LINGER_SECONDS = 30.0


class BoundedReads(asyncio.BufferedProtocol):
    """uvicorn's httptools protocol behind a buffered-read front: the event loop reads into a
    small per-thread buffer (one read at a time on a thread, so one buffer serves every
    connection), and the request body is paused while what was read waits for the app."""

    _local = threading.local()

    def __init__(self, **kwargs: Any) -> None:
        self.http = HttpToolsProtocol(**kwargs)
        self.lingering = False
        self._paused: Any = None  # the request whose body reading was last paused

    def get_buffer(self, sizehint: int) -> memoryview:
        buffer = getattr(self._local, "buffer", None)
        if buffer is None:
            buffer = self._local.buffer = memoryview(bytearray(READ_BYTES))
        cycle = self.http.cycle
        # Reading resumes after a pause when the app asks for more body (a whole read then),
        # or for the next request once an answer is complete (a head read).
        if cycle is not None and cycle is self._paused and not cycle.response_complete:
            return buffer
        return buffer[:HEAD_READ_BYTES]

    def buffer_updated(self, nbytes: int) -> None:
        if self.lingering:
            return  # the rest of a body already answered: dropped
        self.http.data_received(bytes(self._local.buffer[:nbytes]))
        cycle = self.http.cycle
        # Once the response is sent, the rest of an unread body is only parsed past (uvicorn
        # drops it, and resumes reading for the next request): pausing then would freeze the
        # connection behind the bytes the app already refused (found by `make faults`: uploads
        # answered 503 while PostgreSQL restarted hung their connections).
        if cycle is not None and not cycle.response_complete and cycle.body:
            self.http.flow.pause_reading()
            self._paused = cycle

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        wrapped = _LingeringClose(transport, self)
        self.http.connection_made(wrapped)  # type: ignore[arg-type]
        self.http.flow = _ReadWhenTaken(wrapped, self)  # before any request uses it

    def connection_lost(self, exc: Exception | None) -> None:
        self.http.connection_lost(exc)

    def eof_received(self) -> bool | None:
        if self.lingering:
            return False  # the client is done sending: the transport closes
        return self.http.eof_received()

    def body_arriving(self) -> bool:
        cycle = self.http.cycle
        return cycle is not None and cycle.more_body


class _ReadWhenTaken(FlowControl):
    """uvicorn resumes reading on every receive(), even when it hands over body read earlier:
    the next read then waits in the process beside the chunk the app is busy with (32 KiB more
    for each upload waiting on S3). Here reading resumes only once what was read is taken."""

    def __init__(self, transport: Any, protocol: BoundedReads) -> None:
        super().__init__(transport)
        self._protocol = protocol

    def resume_reading(self) -> None:
        cycle = self._protocol.http.cycle
        if cycle is not None and cycle.body and not cycle.response_complete:
            return  # receive() hands this over; it asks again for more
        super().resume_reading()


class _LingeringClose:
    """The transport as uvicorn sees it, but `close()` while the request body still arrives
    lingers: write side shut once the answer is out, the rest read and dropped, then closed."""

    def __init__(self, transport: Any, protocol: BoundedReads) -> None:
        self._transport = transport
        self._protocol = protocol

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def is_closing(self) -> bool:
        return self._protocol.lingering or self._transport.is_closing()

    def close(self) -> None:
        transport = self._transport
        if (
            self._protocol.lingering
            or transport.is_closing()
            or not self._protocol.body_arriving()
            or not transport.can_write_eof()
        ):
            transport.close()
            return
        self._protocol.lingering = True
        transport.write_eof()  # after what is buffered: the answer
        transport.resume_reading()
        asyncio.get_running_loop().call_later(LINGER_SECONDS, transport.close)

    def pause_writing(self) -> None:
        self.http.pause_writing()

    def resume_writing(self) -> None:
        self.http.resume_writing()


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: FastAPI, drain_seconds: float) -> None:
        super().__init__(config)
        self.lifecycle = app.state.lifecycle
        self.drain_seconds = drain_seconds
        self._timer: threading.Timer | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig != signal.SIGTERM or self.drain_seconds <= 0 or self._timer is not None:
            # Ctrl-C, a second signal, or no drain configured: stop now.
            super().handle_exit(sig, frame)
            return
        self.lifecycle.draining = True
        self._timer = threading.Timer(self.drain_seconds, super().handle_exit, (sig, frame))
        self._timer.daemon = True
        self._timer.start()


def serve(app: FastAPI, settings: HTTPSettings) -> None:
    config = uvicorn.Config(
        app,
        host="0.0.0.0",
        port=settings.port,
        http=BoundedReads,
        log_config=None,
        access_log=False,
        timeout_keep_alive=settings.keepalive_seconds,
        timeout_graceful_shutdown=int(settings.shutdown_timeout_seconds),
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        server_header=False,
    )
    DrainingServer(config, app, settings.drain_seconds).run()
