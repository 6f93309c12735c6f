"""Signup and the current account."""

from __future__ import annotations

from typing import Any

import asyncpg
from fastapi import APIRouter, Depends, HTTPException

from risingstars.auth import accounts, deps, metrics, schemas, throttle, validation
from risingstars.auth.passwords import Hasher
from risingstars.auth.routes.jsonbody import JSONBodyRoute, bad_request
from risingstars.auth.settings import Settings
from risingstars.kit.tokens import INVALID_TOKEN, Claims, current_claims

router = APIRouter(prefix="/api/auth", route_class=JSONBodyRoute)

CREATED = "Usuario creado exitosamente."


def _email_taken(email: str) -> HTTPException:
    return bad_request(f"El email {email} ya está registrado")


@router.post(
    "/signup",
    status_code=201,
    response_model=schemas.Created,
    responses={400: {"model": schemas.Error}, 429: {"model": schemas.Error}},
)
async def signup(
    form: validation.SignupForm,
    ip: str = Depends(deps.client_ip),
    pool: asyncpg.Pool = Depends(deps.pool),
    settings: Settings = Depends(deps.settings),
    hasher: Hasher = Depends(deps.hasher),
) -> dict[str, Any]:
    weak = validation.weak_password_reason(
        form.password, settings.password_min_length, email_address=form.email
    )
    if weak:
        raise bad_request(weak)
    # Checked before the (deliberately slow) hash; the insert still catches a racing signup.
    if await accounts.email_taken(pool, form.email):
        raise _email_taken(form.email)
    async with pool.acquire() as conn, conn.transaction():
        wait = await throttle.claim_signup(conn, ip, settings)
    if wait:
        metrics.SIGNUPS_THROTTLED.inc()
        raise HTTPException(
            429,
            f"Demasiados registros desde esta dirección. Intente de nuevo en {wait} segundos.",
            headers={"Retry-After": str(wait)},
        )
    password_hash = await hasher.hash(form.password)
    try:
        user = await accounts.create(pool, form, password_hash)
    except accounts.EmailTaken:
        raise _email_taken(form.email) from None
    except accounts.UsernameTaken as exc:
        raise bad_request(f"El nombre de usuario {exc} ya está en uso") from None
    metrics.SIGNUPS.inc()
    return {"message": CREATED, **accounts.public(user)}


@router.get(
    "/me", response_model=schemas.AccountWithDate, responses={401: {"model": schemas.Error}}
)
async def me(
    claims: Claims = Depends(current_claims), pool: asyncpg.Pool = Depends(deps.pool)
) -> dict[str, Any]:
    user = await accounts.by_id(pool, claims.sub)
    if user is None:  # deleted since the token was issued
        raise HTTPException(401, INVALID_TOKEN, headers={"WWW-Authenticate": "Bearer"})
    return accounts.public(user)
