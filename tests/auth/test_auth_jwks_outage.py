"""A verifier in another service, fed by the real auth service's JWKS over HTTP: while the auth
service is unreachable its keys are trusted up to the cache's maximum age, then verification
fails closed (503 with Retry-After, never a 200 on a key nobody can confirm)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import httpx
import uvicorn
from fastapi import Depends
from polling import eventually

from risingstars.auth.app import create_app
from risingstars.kit import app as kit_app
from risingstars.kit.tokens import KEYS_UNAVAILABLE, Claims, TokenVerifier, current_claims


@contextlib.asynccontextmanager
async def _serving(app) -> AsyncIterator[str]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    task = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: server.started or task.done(), timeout=30, what="auth started")
        assert not task.done(), "the auth service did not start"
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


def _consumer(jwks_url: str):
    app = kit_app.create_app("consumer")
    app.state.verifier = TokenVerifier(
        issuer="rising-stars-auth",
        audience="rising-stars-api",
        jwks_url=jwks_url,
        min_refetch_seconds=0,
        max_age_seconds=1,
    )

    @app.get("/who")
    async def who(claims: Claims = Depends(current_claims)) -> dict[str, str]:
        return {"sub": claims.sub}

    return app


async def test_keys_stop_being_trusted_past_their_max_age_while_auth_is_down(
    make_settings,
) -> None:
    auth = create_app(make_settings())
    token = auth.state.issuer.access_token(uuid.uuid4(), "ana", "Cali")
    async with _serving(auth) as base:
        consumer = _consumer(f"{base}/.well-known/jwks.json")
        transport = httpx.ASGITransport(app=consumer)
        client = httpx.AsyncClient(transport=transport, base_url="http://consumer")
        headers = {"Authorization": f"Bearer {token}"}
        assert (await client.get("/who", headers=headers)).status_code == 200
    # The auth service is gone: once the keys are older than their maximum age, nothing verifies.
    try:
        refused = await eventually(
            lambda: _refused(client, headers), timeout=15, what="verification to fail closed"
        )
    finally:
        await client.aclose()
    assert refused.json() == {"detail": KEYS_UNAVAILABLE, "code": "unavailable"}
    assert int(refused.headers["retry-after"]) >= 1


async def _refused(client: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response | None:
    response = await client.get("/who", headers=headers)
    assert response.status_code in (200, 503), response.text
    return response if response.status_code == 503 else None
