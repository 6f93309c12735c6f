"""Signing keys and access tokens for tests of services that only verify tokens."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ISSUER = "rising-stars-auth"
AUDIENCE = "rising-stars-api"


class TokenFactory:
    def __init__(self, kid: str | None = None) -> None:
        self.key = Ed25519PrivateKey.generate()
        self.kid = kid or uuid.uuid4().hex[:16]

    @property
    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(self.key.public_key()))
        jwk.update({"kid": self.kid, "use": "sig", "alg": "EdDSA"})
        return {"keys": [jwk]}

    def token(
        self,
        sub: str | None = None,
        *,
        username: str = "player",
        city: str = "Bogotá",
        ttl: int = 3600,
        **overrides: Any,
    ) -> str:
        now = int(time.time())
        claims = {
            "sub": sub or str(uuid.uuid4()),
            "username": username,
            "city": city,
            "iss": ISSUER,
            "aud": AUDIENCE,
            "iat": now,
            "nbf": now,
            "exp": now + ttl,
            "jti": uuid.uuid4().hex,
        }
        claims.update(overrides)
        return jwt.encode(claims, self.key, algorithm="EdDSA", headers={"kid": self.kid})

    def headers(self, sub: str | None = None, **kw: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(sub, **kw)}"}
