"""A request body the app has not read yet waits in the socket, not in the process: served by
`kit.serve`'s protocol, a connection holds at most a read and the body buffer, whatever the
client sends (plain uvicorn holds up to 320 KiB)."""

from __future__ import annotations

import asyncio
import contextlib

import uvicorn
from polling import eventually

from risingstars.dev.infra import free_port
from risingstars.kit.serve import HEAD_READ_BYTES, READ_BYTES, BoundedReads

SENT = 4 * 1024 * 1024


@contextlib.asynccontextmanager
async def bounded_server(app):
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        http=BoundedReads,
        log_config=None,
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    await eventually(lambda: server.started, 20, "the server to start")
    try:
        yield server, port
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 20)


async def post_until_paused(server, port: int, then: bytes = b""):
    """A connection that sends a SENT-byte POST body (then `then`), once the server has paused
    reading it: (reader, writer, the server's connection)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: {SENT}\r\n\r\n".encode()
        + b"x" * SENT
        + then
    )
    [connection] = server.server_state.connections
    await eventually(lambda: connection.flow.read_paused, 20, "reading to pause")
    return reader, writer, connection


async def _lifespan(receive, send) -> None:
    while (await receive())["type"] != "lifespan.shutdown":
        await send({"type": "lifespan.startup.complete"})
    await send({"type": "lifespan.shutdown.complete"})


async def test_a_body_refused_unread_does_not_freeze_the_connection() -> None:
    # An upload answered 503 before its body is read (the database is down): the client still
    # sends the whole body, then its next request on the same connection must be served.
    refuse = asyncio.Event()

    async def app(scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            return await _lifespan(receive, send)
        status = 200
        if scope["method"] == "POST":
            await refuse.wait()  # the database wait, while the body arrives and is paused
            status = 503
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async with bounded_server(app) as (server, port):
        then = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
        reader, writer, _ = await post_until_paused(server, port, then)
        try:
            refuse.set()
            assert (await asyncio.wait_for(reader.readline(), 20)).startswith(b"HTTP/1.1 503")
            await asyncio.wait_for(writer.drain(), 20)
            while not (line := await asyncio.wait_for(reader.readline(), 20)).startswith(b"HTTP"):
                assert line, "the connection was closed"
            assert line.startswith(b"HTTP/1.1 200")
        finally:
            writer.transport.abort()  # unsent body and all: a frozen server never reads it


async def test_an_unread_body_waits_in_the_socket() -> None:
    # Until the app asks for the body (an upload waiting for admission) the connection holds
    # only what came with the headers; once it reads, whole reads keep the throughput.
    gate = asyncio.Event()
    read = 0
    largest = 0

    async def app(scope, receive, send) -> None:
        nonlocal read, largest
        if scope["type"] == "lifespan":
            return await _lifespan(receive, send)
        await gate.wait()  # a busy app: the body is not read yet
        more = True
        while more:
            message = await receive()
            read += len(message.get("body", b""))
            largest = max(largest, len(message.get("body", b"")))
            more = message.get("more_body", False)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async with bounded_server(app) as (server, port):
        reader, writer, connection = await post_until_paused(server, port)
        try:
            assert 0 < len(connection.cycle.body) < HEAD_READ_BYTES

            gate.set()
            await asyncio.wait_for(writer.drain(), 20)
            assert (await asyncio.wait_for(reader.readline(), 20)).startswith(b"HTTP/1.1 204")
            assert read == SENT
            assert HEAD_READ_BYTES < largest <= READ_BYTES
        finally:
            gate.set()
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def test_an_early_answer_to_a_closing_client_arrives_instead_of_a_reset() -> None:
    # A client that asked for `Connection: close` is refused (503 busy, 408, 429) while most of
    # its body is still unsent: it must read that answer, not a TCP reset (closing a socket with
    # unread bytes in it resets the connection, and the answer is lost with it).
    async def app(scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            return await _lifespan(receive, send)
        await send({"type": "http.response.start", "status": 503, "headers": [
            (b"retry-after", b"5"), (b"content-length", b"4")]})  # fmt: skip
        await send({"type": "http.response.body", "body": b"busy"})

    async with bounded_server(app) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        size = 32 * 1024 * 1024
        head = f"POST / HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: {size}\r\n\r\n"
        writer.write(head.encode())
        chunk = b"x" * (256 * 1024)
        try:
            for _ in range(size // len(chunk)):  # a client sending its whole body, as JMeter does
                writer.write(chunk)
                await asyncio.wait_for(writer.drain(), 20)
        except ConnectionError:
            pass  # the server stopped reading; what matters is what can be read
        try:
            answer = await asyncio.wait_for(reader.read(), 20)
        finally:
            writer.transport.abort()
        assert answer.startswith(b"HTTP/1.1 503") and answer.endswith(b"busy")


async def test_a_chunk_being_worked_on_is_not_read_ahead_of() -> None:
    # An upload busy with a chunk (waiting for room for a part behind a slow S3) holds that
    # chunk, not the next read too: uvicorn alone resumes reading on every receive().
    took_one, gate = asyncio.Event(), asyncio.Event()

    async def app(scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            return await _lifespan(receive, send)
        if scope["method"] == "POST":
            await receive()
            took_one.set()
            await gate.wait()
            while (await receive()).get("more_body"):
                pass
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async with bounded_server(app) as (server, port):
        reader, writer, uploading = await post_until_paused(server, port)
        try:
            await asyncio.wait_for(took_one.wait(), 20)
            # Another connection's request and answer: loop turns enough for a read-ahead,
            # whose bytes are already in the socket.
            other_reader, other = await asyncio.open_connection("127.0.0.1", port)
            other.write(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            assert (await asyncio.wait_for(other_reader.read(), 20)).startswith(b"HTTP/1.1 204")
            other.close()
            assert len(uploading.cycle.body) == 0

            gate.set()
            await asyncio.wait_for(writer.drain(), 20)
            assert (await asyncio.wait_for(reader.readline(), 20)).startswith(b"HTTP/1.1 204")
        finally:
            gate.set()
            writer.transport.abort()
