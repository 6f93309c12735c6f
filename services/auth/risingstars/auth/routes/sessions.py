"""Login, refresh and logout."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from fastapi import APIRouter, Depends, HTTPException, Response

from risingstars.auth import deps, metrics, queries, schemas, sessions, throttle, validation
from risingstars.auth.passwords import Hasher, needs_rehash
from risingstars.auth.routes.jsonbody import JSONBodyRoute
from risingstars.auth.sessions import Issuer
from risingstars.auth.settings import Settings

router = APIRouter(prefix="/api/auth", route_class=JSONBodyRoute)
log = logging.getLogger("risingstars.auth.login")

BAD_CREDENTIALS = "Email o contraseña incorrectos"
BAD_REFRESH_TOKEN = "Token de actualización inválido o expirado"  # noqa: S105 (a message)
# Token responses must not be cached by anything between us and the client (RFC 6749 §5.1).
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _throttled(seconds: int) -> HTTPException:
    return HTTPException(
        429,
        f"Demasiados intentos fallidos. Intente de nuevo en {seconds} segundos.",
        headers={"Retry-After": str(seconds)},
    )


@router.post(
    "/login",
    response_model=schemas.Tokens,
    responses={
        400: {"model": schemas.Error},
        401: {"model": schemas.Error},
        429: {"model": schemas.Error},
    },
)
async def login(
    creds: validation.Credentials,
    response: Response,
    ip: str = Depends(deps.client_ip),
    pool: asyncpg.Pool = Depends(deps.pool),
    settings: Settings = Depends(deps.settings),
    hasher: Hasher = Depends(deps.hasher),
    issuer: Issuer = Depends(deps.issuer),
) -> dict[str, Any]:
    # No connection is held while the password hash runs.
    async with pool.acquire() as conn, conn.transaction():
        wait = await throttle.claim_attempt(conn, creds.email, ip, settings)
        user = None if wait else await conn.fetchrow(queries.USER_BY_EMAIL, creds.email)
    if wait:
        metrics.LOGINS.labels("throttled").inc()
        log.info("login throttled", extra={"client_ip": ip, "retry_after": wait})
        raise _throttled(wait)
    stored = user["password_hash"] if user is not None else None
    # An unknown email is checked against a dummy hash: same work, same answer, same timing.
    verified = await hasher.verify(creds.password, stored)
    if user is None or not verified:  # the failure was recorded before the check
        metrics.LOGINS.labels("invalid_credentials").inc()
        # No email in the log: a mistyped password pasted into the email field would leak.
        log.info("login failed", extra={"client_ip": ip})
        raise HTTPException(401, BAD_CREDENTIALS)
    if needs_rehash(stored):
        await pool.execute(
            queries.UPDATE_PASSWORD_HASH, user["id"], await hasher.hash(creds.password)
        )
    metrics.LOGINS.labels("success").inc()
    response.headers.update(NO_STORE)
    return await sessions.start(pool, issuer, user, throttle.email_key(creds.email))


@router.post(
    "/refresh",
    response_model=schemas.Tokens,
    responses={400: {"model": schemas.Error}, 401: {"model": schemas.Error}},
)
async def refresh(
    body: validation.RefreshRequest,
    response: Response,
    pool: asyncpg.Pool = Depends(deps.pool),
    issuer: Issuer = Depends(deps.issuer),
) -> dict[str, Any]:
    outcome = await sessions.rotate(pool, issuer, body.refresh_token)
    if isinstance(outcome, sessions.Refused):
        raise HTTPException(401, BAD_REFRESH_TOKEN)
    response.headers.update(NO_STORE)
    return outcome


@router.post(
    "/logout",
    status_code=204,
    response_class=Response,
    responses={400: {"model": schemas.Error}, 401: {"model": schemas.Error}},
)
async def logout(
    body: validation.RefreshRequest, pool: asyncpg.Pool = Depends(deps.pool)
) -> Response:
    if not await sessions.end(pool, body.refresh_token):
        raise HTTPException(401, BAD_REFRESH_TOKEN)
    return Response(status_code=204)
