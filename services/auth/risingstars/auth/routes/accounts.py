"""Signup and the current account."""

from __future__ import annotations

from typing import Any

import asyncpg
from fastapi import APIRouter, Depends

from risingstars.auth import accounts, deps, schemas, validation
from risingstars.auth.passwords import Hasher
from risingstars.auth.routes.jsonbody import JSONBodyRoute
from risingstars.auth.settings import Settings
from risingstars.kit import errors
from risingstars.kit.tokens import INVALID_TOKEN, Claims, current_claims

router = APIRouter(prefix="/api/auth", route_class=JSONBodyRoute)


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
    return await accounts.signup(pool, hasher, settings, form, ip)


@router.get(
    "/me", response_model=schemas.AccountWithDate, responses={401: {"model": schemas.Error}}
)
async def me(
    claims: Claims = Depends(current_claims), pool: asyncpg.Pool = Depends(deps.pool)
) -> dict[str, Any]:
    user = await accounts.by_id(pool, claims.sub)
    if user is None:  # deleted since the token was issued
        raise errors.Unauthorized(INVALID_TOKEN)
    return accounts.public(user)
