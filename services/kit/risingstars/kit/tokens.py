"""Access-token verification against a JWKS, done locally by every service.

Keys are cached for the JWKS response's `max-age` (bounded), so a key the auth service removed
stops verifying within that time; a token whose `kid` is unknown triggers at most one refetch per
`min_refetch_seconds` (a rotated key is picked up at once, a flood of forged kids costs nothing).
While the auth service is unreachable the last keys stay in use, but never longer than
`max_age_seconds` (MAX_JWKS_AGE, 15 minutes) after they were last fetched: past that, nothing
verifies and requests that need a token answer 503 with Retry-After (fail closed), so a key
removed during an outage is not trusted forever.
Only the allow-listed algorithms are accepted, and `exp`, `nbf`, `iat`, `iss`, `aud` are
checked with a small leeway.

`Claims` names the claims of the platform's access token (`sub`, `username`, `city`): like the
queue messages, the token is a contract between the auth service and every verifier, so it is
written down once, here.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import logging
import re
import time
from collections.abc import Mapping
from typing import Any

import httpx
import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from risingstars.kit import errors

log = logging.getLogger("risingstars.tokens")

ALGORITHMS = ("EdDSA",)
NOT_AUTHENTICATED = "No autenticado: se requiere un token Bearer válido"
INVALID_TOKEN = "Token inválido o expirado"  # noqa: S105 (a message, not a secret)
KEYS_UNAVAILABLE = (
    "No se pueden verificar las credenciales en este momento. Intente de nuevo más tarde."
)


# The JWKS is refetched after its max-age, kept between these bounds (seconds): never more often
# than unknown kids may cause, never trusted longer than an hour; 5 minutes when it says nothing.
MAX_JWKS_LIFETIME = 3600
DEFAULT_JWKS_LIFETIME = 300
# How long keys stay trusted after their last successful fetch when refetches fail.
MAX_JWKS_AGE = 900
_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d+)", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|[,\s])(?:no-cache|no-store)(?:$|[,\s])", re.IGNORECASE)


def jwks_lifetime(
    cache_control: str | None, *, floor: float, ceiling: float, default: float
) -> float:
    """How long a fetched JWKS may be used, from its Cache-Control header."""
    if cache_control and _NO_CACHE.search(cache_control):
        return floor
    match = _MAX_AGE.search(cache_control or "")
    seconds = int(match.group(1)) if match else default
    return min(max(seconds, floor), ceiling)


class TokenError(Exception):
    """The token is not acceptable; the message says why (for logs, not for clients)."""


class KeysUnavailable(Exception):
    """No keys may be trusted: they are older than the maximum age and the JWKS cannot be
    fetched. Not the token's fault: a 503 the client may retry."""


@dataclasses.dataclass(frozen=True)
class Claims:
    sub: str
    username: str
    city: str
    raw: Mapping[str, Any]


def parse_jwks(document: Mapping[str, Any], algorithms: tuple[str, ...]) -> dict[str, jwt.PyJWK]:
    keys: dict[str, jwt.PyJWK] = {}
    for entry in document.get("keys", []):
        kid = entry.get("kid")
        if not kid or entry.get("use", "sig") != "sig":
            continue
        try:
            key = jwt.PyJWK(entry)
        except jwt.PyJWTError as exc:
            log.warning("ignoring unusable JWK", extra={"kid": kid, "error": str(exc)})
            continue
        if key.algorithm_name in algorithms:
            keys[kid] = key
    return keys


class TokenVerifier:
    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        jwks_url: str | None = None,
        jwks: Mapping[str, Any] | None = None,
        algorithms: tuple[str, ...] = ALGORITHMS,
        leeway_seconds: float = 30,
        min_refetch_seconds: float = 30,
        max_age_seconds: float = MAX_JWKS_AGE,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        if jwks_url is None and jwks is None:
            raise ValueError("a JWKS URL or a JWKS document is required")
        self.issuer = issuer
        self.audience = audience
        self.jwks_url = jwks_url
        self.algorithms = algorithms
        self.leeway = leeway_seconds
        self.min_refetch = min_refetch_seconds
        self.max_age = max_age_seconds
        self._http = http
        self._keys: dict[str, jwt.PyJWK] = parse_jwks(jwks, algorithms) if jwks else {}
        self._last_fetch = float("-inf")
        # A JWKS given as a document (the auth service's own) never goes stale nor expires.
        self._stale_at = float("inf") if jwks_url is None else float("-inf")
        self._expires_at = float("inf") if jwks_url is None else float("-inf")
        self._lock = asyncio.Lock()
        self._decoder = jwt.PyJWT()

    @property
    def has_keys(self) -> bool:
        return bool(self._keys)

    async def refresh(self, *, force: bool = False) -> bool:
        """Refetch the JWKS unless done within `min_refetch_seconds`; True if it was fetched."""
        if self.jwks_url is None:
            return False
        async with self._lock:
            if not force and time.monotonic() - self._last_fetch < self.min_refetch:
                return False
            self._last_fetch = time.monotonic()
            client = self._http or httpx.AsyncClient(timeout=5)
            try:
                response = await client.get(self.jwks_url)
                response.raise_for_status()
                keys = parse_jwks(response.json(), self.algorithms)
            finally:
                if self._http is None:
                    await client.aclose()
            if keys:
                self._keys = keys
                lifetime = jwks_lifetime(
                    response.headers.get("cache-control"),
                    floor=self.min_refetch,
                    ceiling=MAX_JWKS_LIFETIME,
                    default=DEFAULT_JWKS_LIFETIME,
                )
                self._stale_at = self._last_fetch + min(lifetime, self.max_age)
                self._expires_at = self._last_fetch + self.max_age
            return True

    async def _refresh_quietly(self) -> None:
        # On failure the last keys stay in use: an outage of the auth service must not log
        # every player out; refetches are retried every `min_refetch_seconds`.
        try:
            await self.refresh()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("JWKS refetch failed", extra={"error": repr(exc)})

    async def ensure_keys(self) -> None:
        """Readiness: keys are loaded (fetching them if none are)."""
        if not self._keys:
            await self.refresh(force=True)
        if not self._keys:
            raise TokenError("no signing keys available")

    async def verify(self, token: str) -> Claims:
        header = _unverified_header(token)
        alg = header.get("alg")
        if alg not in self.algorithms:
            raise TokenError(f"algorithm {alg!r} not allowed")
        kid = header.get("kid")
        if time.monotonic() >= self._stale_at:
            await self._refresh_quietly()
        if time.monotonic() >= self._expires_at and self._keys:
            raise KeysUnavailable(f"the JWKS is older than {self.max_age:g} s")
        key = self._keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            await self._refresh_quietly()
            key = self._keys.get(kid) if isinstance(kid, str) else None
            if key is None:
                raise TokenError(f"unknown key id {kid!r}")
        return self.decode_with(token, key, alg)

    def decode_with(self, token: str, key: jwt.PyJWK, alg: str) -> Claims:
        try:
            claims = self._decoder.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise TokenError(str(exc)) from exc
        except RecursionError:  # a payload nested past the parser's depth (signed by us: never)
            raise TokenError("malformed token: nested too deeply") from None
        iat = claims.get("iat")
        if not isinstance(iat, int | float) or iat > time.time() + self.leeway:
            raise TokenError("issued in the future")
        return Claims(
            sub=str(claims["sub"]),
            username=str(claims.get("username", "")),
            city=str(claims.get("city", "")),
            raw=claims,
        )


def _unverified_header(token: str) -> dict[str, Any]:
    """Only the JOSE header, to pick the key: jwt.get_unverified_header decodes the whole token,
    which decode() then does again (a fifth of the verification time). decode() re-checks it."""
    segment = token.split(".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, TypeError) as exc:  # binascii.Error and bad UTF-8 are ValueErrors
        raise TokenError(f"malformed token: {exc}") from exc
    except RecursionError:  # `[[[[...` past the JSON parser's depth limit
        raise TokenError("malformed token: the header is nested too deeply") from None
    if not isinstance(header, dict):
        raise TokenError("malformed token: the header is not a JSON object")
    return header


# Declared so every API document marks the routes that need a token; the header is read below,
# where a missing or malformed one gets the contract's 401 rather than FastAPI's 403.
_bearer = HTTPBearer(auto_error=False, scheme_name="bearerAuth", bearerFormat="JWT")


async def current_claims(
    request: Request, _: HTTPAuthorizationCredentials | None = Depends(_bearer)
) -> Claims:
    """FastAPI dependency: the verified claims of the request's bearer token, or 401."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise errors.Unauthorized(NOT_AUTHENTICATED)
    verifier: TokenVerifier = request.app.state.verifier
    try:
        return await verifier.verify(token.strip())
    except TokenError as exc:
        log.info("token rejected", extra={"reason": str(exc)})
        raise errors.Unauthorized(INVALID_TOKEN) from None
    except KeysUnavailable as exc:
        log.warning("token not verifiable", extra={"reason": str(exc)})
        raise errors.Unavailable(KEYS_UNAVAILABLE, retry_after_seconds=5) from None
