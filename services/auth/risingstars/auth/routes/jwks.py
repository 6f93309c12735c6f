"""The public half of every signing key, for verifiers in other services."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from risingstars.auth import deps, schemas
from risingstars.auth.keys import KeyRing

router = APIRouter()


@router.get("/.well-known/jwks.json", response_model=schemas.JWKSet)
async def jwks(keyring: KeyRing = Depends(deps.keyring)) -> JSONResponse:
    # Short enough that a newly added key is seen soon; verifiers also refetch on unknown kids.
    return JSONResponse(keyring.jwks(), headers={"Cache-Control": "public, max-age=300"})
