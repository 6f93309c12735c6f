"""make run's gateway under the load test's concurrency: 300 uploads in flight at once all reach
the service behind it (none queued in the gateway), and an early answer from the service (a 401
before the body is read) reaches the client as it was sent, not as a 502."""

from __future__ import annotations

import asyncio
import contextlib

import httpx
import pytest
import uvicorn
from polling import eventually

from risingstars.dev.gateway import Gateway
from risingstars.dev.infra import free_port

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
async def serving(app, port: int):
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
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
