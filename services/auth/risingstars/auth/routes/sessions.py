"""Login, refresh and logout."""

from __future__ import annotations

from typing import Any

import asyncpg
from fastapi import APIRouter, Depends, Response

from risingstars.auth import deps, schemas, sessions, validation
from risingstars.auth.passwords import Hasher
from risingstars.auth.routes.jsonbody import JSONBodyRoute
from risingstars.auth.sessions import Issuer

router = APIRouter(prefix="/api/auth", route_class=JSONBodyRoute)

# Token responses must not be cached by anything between us and the client (RFC 6749 §5.1).
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_REFUSED = {400: {"model": schemas.Error}, 401: {"model": schemas.Error}}


@router.post(
    "/login",
    response_model=schemas.Tokens,
    responses={**_REFUSED, 429: {"model": schemas.Error}},
)
async def login(
    creds: validation.Credentials,
    response: Response,
    ip: str = Depends(deps.client_ip),
    pool: asyncpg.Pool = Depends(deps.pool),
    hasher: Hasher = Depends(deps.hasher),
    issuer: Issuer = Depends(deps.issuer),
) -> dict[str, Any]:
    tokens = await sessions.login(pool, hasher, issuer, creds, ip)
    response.headers.update(NO_STORE)
    return tokens


@router.post("/refresh", response_model=schemas.Tokens, responses=_REFUSED)
async def refresh(
    body: validation.RefreshRequest,
    response: Response,
    pool: asyncpg.Pool = Depends(deps.pool),
    issuer: Issuer = Depends(deps.issuer),
) -> dict[str, Any]:
    tokens = await sessions.rotate(pool, issuer, body.refresh_token)
    response.headers.update(NO_STORE)
    return tokens


@router.post("/logout", status_code=204, response_class=Response, responses=_REFUSED)
async def logout(
    body: validation.RefreshRequest, pool: asyncpg.Pool = Depends(deps.pool)
) -> Response:
    await sessions.end(pool, body.refresh_token)
    return Response(status_code=204)
