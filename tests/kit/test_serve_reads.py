"""A request body the app has not read yet waits in the socket, not in the process: served by
`kit.serve`'s protocol, a connection holds at most a read and the body buffer, whatever the
client sends (plain uvicorn holds up to 320 KiB)."""

from __future__ import annotations

import asyncio
import contextlib

import uvicorn
from polling import eventually

from risingstars.dev.infra import free_port
from risingstars.kit.serve import BODY_BUFFER_BYTES, READ_BYTES, BoundedReads

SENT = 4 * 1024 * 1024


async def test_an_unread_body_waits_in_the_socket() -> None:
    gate = asyncio.Event()
    read = 0

    async def app(scope, receive, send) -> None:
        nonlocal read
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        await gate.wait()  # a busy app: the body is not read yet
        more = True
        while more:
            message = await receive()
            read += len(message.get("body", b""))
            more = message.get("more_body", False)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

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
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            f"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: {SENT}\r\n\r\n".encode() + b"x" * SENT
        )
        [connection] = server.server_state.connections
        await eventually(lambda: connection.flow.read_paused, 20, "reading to pause")
        assert 0 < len(connection.cycle.body) <= READ_BYTES + BODY_BUFFER_BYTES

        gate.set()
        await asyncio.wait_for(writer.drain(), 20)
        assert (await asyncio.wait_for(reader.readline(), 20)).startswith(b"HTTP/1.1 204")
        assert read == SENT
    finally:
        gate.set()
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        server.should_exit = True
        await asyncio.wait_for(serving, 20)
