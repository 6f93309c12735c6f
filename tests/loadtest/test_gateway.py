"""make run's gateway under the load test's concurrency: 300 uploads in flight at once all reach
the service behind it (none queued in the gateway), and an early answer from the service (a 401
before the body is read) reaches the client as it was sent, not as a 502. A service that is down
or restarting gives the client 503 + Retry-After in the services' error shape, never a 502; a
request refused while it restarts, or a GET on a connection closed under it, is tried again.
The gateway routes on the path it forwards, dot segments resolved once."""

from __future__ import annotations

import asyncio
import contextlib
import socket

import httpx
import pytest
import uvicorn
from polling import eventually

from risingstars.dev import gateway as gateway_module
from risingstars.dev.gateway import Gateway
from risingstars.dev.infra import free_port
from risingstars.kit.settings import HTTPSettings

UPLOADS = 300
BODY = b"x" * 64 * 1024


class Upstream:
    """Holds every request, body read, until released; counts how many it holds at once."""

    def __init__(self) -> None:
        self.held = 0
        self.release = asyncio.Event()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/api/videos/refused":
            # Answer before reading the body, as an expired token does.
            await send({"type": "http.response.start", "status": 401, "headers": []})
            await send({"type": "http.response.body", "body": b"token expired"})
            return
        received = 0
        more = True
        while more:
            message = await receive()
            received += len(message.get("body", b""))
            more = message.get("more_body", False)
        self.held += 1
        await self.release.wait()
        body = str(received).encode()
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": body})


@contextlib.asynccontextmanager
async def serving(app, port: int, sock: socket.socket | None = None):
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock] if sock else None))
    await eventually(lambda: server.started, 20, f"server on {port}")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def gateway():
    upstream = Upstream()
    async with (
        serving(upstream, free_port()) as target,
        serving(Gateway([("/api/videos", target)]), free_port()) as url,
    ):
        yield upstream, url


async def test_300_concurrent_uploads_all_reach_the_service(gateway) -> None:
    upstream, url = gateway
    limits = httpx.Limits(max_connections=None)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:
        uploads = [
            asyncio.create_task(client.post("/api/videos/upload", content=BODY))
            for _ in range(UPLOADS)
        ]
        try:
            await eventually(lambda: upstream.held == UPLOADS, 60, "all uploads at the service")
        finally:
            upstream.release.set()
        responses = await asyncio.gather(*uploads)
    assert [r.status_code for r in responses] == [201] * UPLOADS
    assert {r.text for r in responses} == {str(len(BODY))}


async def test_an_early_answer_is_relayed_not_turned_into_a_502(gateway) -> None:
    _, url = gateway
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        r = await client.post("/api/videos/refused", content=b"x" * 8 * 1024 * 1024)
    assert r.status_code == 401
    assert r.text == "token expired"


async def ok(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def _unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) >= 1
    assert response.json() == {"detail": gateway_module.UNAVAILABLE, "code": "unavailable"}


async def test_a_service_down_answers_503_with_retry_after() -> None:
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    app = Gateway([("/api/videos", down)], retry_pauses=(0.05, 0.05))
    async with (
        serving(app, free_port()) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        _unavailable(await client.get("/api/videos"))
        _unavailable(await client.post("/api/videos/upload", content=BODY))


async def test_a_request_refused_while_the_service_restarts_is_tried_again() -> None:
    # Bound but not listening: connections are refused until the service "comes back", which
    # it does as the gateway makes its second attempt.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    attempts = 0

    async def count(_: httpx.Request) -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 2:
            sock.listen(16)

    app = Gateway([("/api/videos", f"http://127.0.0.1:{port}")], retry_pauses=(0.1, 5, 5))
    app.client.event_hooks["request"].append(count)
    async with (
        serving(app, free_port()) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        request = asyncio.create_task(client.post("/api/videos/upload", content=BODY))
        await eventually(lambda: attempts >= 2, 20, "a second attempt")
        async with serving(ok, port, sock):
            response = await request
    assert response.status_code == 200 and attempts == 2


class ClosesSecondRequest:
    """A raw HTTP/1.1 server that answers a connection's first request and closes the
    connection on its second without answering: what the gateway sees when a service closes an
    idle connection just as the gateway reuses it (the keep-alive race)."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests = 0

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await reader.readuntil(b"\r\n\r\n")
            self.requests += 1
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            await writer.drain()
            await reader.readuntil(b"\r\n\r\n")
            self.requests += 1
        writer.close()


async def test_a_get_on_a_connection_closed_under_it_is_tried_again() -> None:
    upstream = ClosesSecondRequest()
    server = await asyncio.start_server(upstream, "127.0.0.1", 0)
    target = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    app = Gateway([("/api/videos", target)], retry_pauses=(0.05,))
    try:
        async with (
            serving(app, free_port()) as url,
            httpx.AsyncClient(base_url=url, timeout=30) as client,
        ):
            assert (await client.get("/api/videos")).status_code == 200
            # Same pooled connection, closed before an answer: a fresh one answers.
            assert (await client.get("/api/videos")).status_code == 200
            assert upstream.connections == 2
            # A POST may have been acted on: not repeated, the client is told to come back.
            _unavailable(await client.post("/api/videos/1/vote"))
            assert upstream.requests == 4
    finally:
        server.close()
        await server.wait_closed()


def test_the_gateway_drops_idle_connections_before_the_services_do() -> None:
    assert HTTPSettings().keepalive_seconds > gateway_module.KEEPALIVE_SECONDS


class PathRecorder:
    """Answers 200 with the path it was asked for."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        self.paths.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": scope["path"].encode()})


async def _raw_get(url: str, path: str) -> tuple[int, bytes]:
    """A GET sent byte for byte (curl --path-as-is): HTTP clients resolve dot segments first."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


@pytest.mark.parametrize(
    ("path", "status", "seen"),
    [
        ("/api/public/../../metrics", 404, None),  # resolves to /metrics: no route
        ("/api/public/%2e%2e/%2e%2e/metrics", 400, None),  # dot segments in disguise
        ("/api/public/..%2f..%2fmetrics", 400, None),  # an encoded slash
        ("/api/public/./rankings/../rankings", 200, "/api/public/rankings"),
    ],
)
async def test_the_gateway_routes_on_exactly_the_path_it_forwards(path, status, seen) -> None:
    upstream = PathRecorder()
    async with (
        serving(upstream, free_port()) as target,
        serving(Gateway([("/api/public", target)]), free_port()) as url,
    ):
        code, body = await _raw_get(url, path)
    assert code == status, body
    assert upstream.paths == ([seen] if seen else [])
