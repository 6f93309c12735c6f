"""What the auth routes answer (their response models, so the OpenAPI document shows them)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Error(BaseModel):
    detail: str = Field(description="Why, in Spanish, for the player")


class Account(BaseModel):
    id: str
    email: str
    username: str
    first_name: str
    last_name: str
    city: str
    country: str


class AccountWithDate(Account):
    created_at: str = Field(json_schema_extra={"format": "date-time"})


class Created(Account):
    message: str = Field(examples=["Usuario creado exitosamente."])


class Tokens(BaseModel):
    access_token: str = Field(description="EdDSA-signed JWT; verify it with the JWKS")
    token_type: str = Field(examples=["Bearer"])
    expires_in: int = Field(description="Seconds until the access token expires")
    refresh_token: str = Field(description="Opaque; spent by /refresh, which returns the next")


class JWK(BaseModel):
    kty: str
    crv: str
    x: str
    kid: str
    use: str
    alg: str


class JWKSet(BaseModel):
    keys: list[JWK]
