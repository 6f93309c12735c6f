"""The public half of every signing key, for verifiers in other services."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from risingstars.auth import deps, schemas
from risingstars.auth.keys import KeyRing

router = APIRouter()


@router.get("/.well-known/jwks.json", response_model=schemas.JWKSet)
async def jwks(keyring: KeyRing = Depends(deps.keyring)) -> JSONResponse:
    # Verifiers refetch after max-age (a removed key stops verifying within it) and on an
    # unknown kid (a new key is picked up at once).
    return JSONResponse(keyring.jwks(), headers={"Cache-Control": "public, max-age=300"})
