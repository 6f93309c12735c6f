"""Access tokens (signed JWTs) and refresh tokens (opaque, stored hashed, rotated per use)."""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import hmac
import logging
import secrets
import time
import uuid
from typing import Any

import asyncpg
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from risingstars.auth import metrics, queries, throttle
from risingstars.auth.keys import KeyRing
from risingstars.auth.passwords import Hasher, needs_rehash
from risingstars.auth.settings import Settings
from risingstars.auth.validation import Credentials
from risingstars.kit import errors

log = logging.getLogger("risingstars.auth.sessions")

BAD_CREDENTIALS = "Email o contraseña incorrectos"
BAD_REFRESH_TOKEN = "Token de actualización inválido o expirado"  # noqa: S105 (a message)


class BadCredentials(errors.Unauthorized):
    """The same answer whether the email is unknown or the password wrong."""

    code = "invalid_credentials"

    def __init__(self) -> None:
        super().__init__(BAD_CREDENTIALS)


class BadRefreshToken(errors.Unauthorized):
    code = "invalid_refresh_token"

    def __init__(self) -> None:
        super().__init__(BAD_REFRESH_TOKEN)


class LoginsThrottled(errors.TooMany):
    code = "logins_throttled"

    def __init__(self, seconds: int) -> None:
        super().__init__(
            f"Demasiados intentos fallidos. Intente de nuevo en {seconds} segundos.",
            retry_after_seconds=seconds,
        )


def hash_refresh_token(token: str) -> bytes:
    # The tokens are 256 random bits: a fast hash is enough, and a stolen table is useless.
    return hashlib.sha256(token.encode("utf-8")).digest()


def _sealing_key(token: str) -> bytes:
    return hmac.new(token.encode("utf-8"), b"risingstars refresh successor", "sha256").digest()


# Each key seals exactly one message (a token is spent once), so a fixed nonce is safe.
_NONCE = bytes(12)


def seal_successor(token: str, successor: str) -> bytes:
    """The successor, readable only by whoever holds `token` (the table stores only hashes)."""
    return AESGCM(_sealing_key(token)).encrypt(_NONCE, successor.encode("utf-8"), None)


def unseal_successor(token: str, sealed: bytes | None) -> str | None:
    if sealed is None:
        return None
    try:
        return AESGCM(_sealing_key(token)).decrypt(_NONCE, sealed, None).decode("utf-8")
    except (InvalidTag, UnicodeDecodeError):
        return None


@dataclasses.dataclass(frozen=True)
class Issuer:
    keyring: KeyRing
    settings: Settings

    def access_token(self, user_id: Any, username: str, city: str) -> str:
        now = int(time.time())
        return self.keyring.sign(
            {
                "sub": str(user_id),
                "username": username,
                "city": city,
                "iss": self.settings.jwt_issuer,
                "aud": self.settings.jwt_audience,
                "iat": now,
                "nbf": now,
                "exp": now + self.settings.access_token_ttl_seconds,
                "jti": uuid.uuid4().hex,
            }
        )

    def response(self, user_id: Any, username: str, city: str, refresh: str) -> dict[str, Any]:
        return {
            "access_token": self.access_token(user_id, username, city),
            "token_type": "Bearer",
            "expires_in": self.settings.access_token_ttl_seconds,
            "refresh_token": refresh,
        }


async def _add_refresh_token(
    conn: asyncpg.Connection, family_id: uuid.UUID, user_id: Any, ttl: int
) -> str:
    token = secrets.token_urlsafe(32)
    await conn.execute(
        queries.INSERT_REFRESH_TOKEN, hash_refresh_token(token), family_id, user_id, ttl
    )
    return token


async def login(
    pool: asyncpg.Pool, hasher: Hasher, issuer: Issuer, creds: Credentials, ip: str
) -> dict[str, Any]:
    """Check the password (throttled per email and address, and per address) and start a
    session: the token response."""
    settings = issuer.settings
    # No connection is held while the password hash runs.
    async with pool.acquire() as conn, conn.transaction():
        wait = await throttle.claim_attempt(conn, creds.email, ip, settings)
        user = None if wait else await conn.fetchrow(queries.USER_BY_EMAIL, creds.email)
    if wait:
        metrics.LOGINS.labels("throttled").inc()
        log.info("login throttled", extra={"client_ip": ip, "retry_after": wait})
        raise LoginsThrottled(wait)
    stored = user["password_hash"] if user is not None else None
    # An unknown email is checked against a dummy hash: same work, same answer, same timing.
    verified = await hasher.verify(creds.password, stored)
    if user is None or not verified:  # the failure was recorded before the check
        metrics.LOGINS.labels("invalid_credentials").inc()
        # No email in the log: a mistyped password pasted into the email field would leak.
        log.info("login failed", extra={"client_ip": ip})
        raise BadCredentials()
    if needs_rehash(stored):
        await pool.execute(
            queries.UPDATE_PASSWORD_HASH, user["id"], await hasher.hash(creds.password)
        )
    metrics.LOGINS.labels("success").inc()
    return await start(pool, issuer, user, throttle.email_key(creds.email), ip)


async def start(
    pool: asyncpg.Pool, issuer: Issuer, user: asyncpg.Record, email_key: str, ip: str
) -> dict[str, Any]:
    """After a correct password: clear the failures of this email from this address (not an
    attacker's elsewhere, whose count must keep holding them back), open a refresh family."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(queries.CLEAR_EMAIL_FAILURES, email_key, ip)
        refresh = await _add_refresh_token(
            conn, uuid.uuid4(), user["id"], issuer.settings.refresh_token_ttl_seconds
        )
    metrics.TOKENS_ISSUED.labels("password").inc()
    return issuer.response(user["id"], user["username"], user["city"], refresh)


async def _repeated(conn: asyncpg.Connection, token: str, row: asyncpg.Record) -> str | None:
    """The successor already handed out for `token`, if it is being presented again within the
    grace window and that successor is still unused; None otherwise (a reuse)."""
    if not row["in_grace"] or row["expired"]:
        return None
    successor = unseal_successor(token, row["successor_sealed"])
    if successor is None or not await conn.fetchval(
        queries.REFRESH_TOKEN_LIVE, hash_refresh_token(successor)
    ):
        return None
    return successor


class Refused(enum.Enum):
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    REVOKED = "revoked"
    REUSED = "reused"


async def rotate(pool: asyncpg.Pool, issuer: Issuer, token: str) -> dict[str, Any]:
    """Spend `token` and hand out its successor (BadRefreshToken when it cannot be). A spent
    token presented again within the grace window (one client refreshing twice at once) gets
    the same successor; later, it revokes its whole family (it was stolen, or the rightful
    client is replaying it: either way nobody may continue)."""
    grace = float(issuer.settings.refresh_token_grace_seconds)
    repeated = None
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(queries.LOCK_REFRESH_TOKEN, hash_refresh_token(token), grace)
        if row is None:
            outcome: dict[str, Any] | Refused = Refused.UNKNOWN
        elif row["revoked"]:
            outcome = Refused.REVOKED
        elif row["spent"] and (repeated := await _repeated(conn, token, row)):
            outcome = issuer.response(row["user_id"], row["username"], row["city"], repeated)
        elif row["spent"]:
            await conn.execute(queries.REVOKE_FAMILY, row["family_id"])
            log.warning(
                "spent refresh token presented again; its family is revoked",
                extra={"user_id": str(row["user_id"]), "family_id": str(row["family_id"])},
            )
            outcome = Refused.REUSED
        elif row["expired"]:
            outcome = Refused.EXPIRED
        else:
            refresh = await _add_refresh_token(
                conn, row["family_id"], row["user_id"], issuer.settings.refresh_token_ttl_seconds
            )
            await conn.execute(
                queries.SPEND_REFRESH_TOKEN,
                hash_refresh_token(token),
                seal_successor(token, refresh),
            )
            outcome = issuer.response(row["user_id"], row["username"], row["city"], refresh)
    if isinstance(outcome, Refused):
        metrics.REFRESHES.labels(outcome.value).inc()
        raise BadRefreshToken()
    metrics.REFRESHES.labels("repeated" if repeated else "rotated").inc()
    metrics.TOKENS_ISSUED.labels("refresh").inc()
    return outcome


async def end(pool: asyncpg.Pool, token: str) -> None:
    """Logout: revoke the family `token` belongs to (BadRefreshToken if there is none)."""
    async with pool.acquire() as conn, conn.transaction():
        family = await conn.fetchval(queries.FAMILY_OF, hash_refresh_token(token))
        if family is None:
            raise BadRefreshToken()
        await conn.execute(queries.REVOKE_FAMILY, family)
