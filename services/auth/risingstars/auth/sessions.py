"""Access tokens (signed JWTs) and refresh tokens (opaque, stored hashed, rotated per use)."""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import logging
import secrets
import time
import uuid
from typing import Any

import asyncpg

from risingstars.auth import metrics, queries
from risingstars.auth.keys import KeyRing
from risingstars.auth.settings import Settings

log = logging.getLogger("risingstars.auth.sessions")


def hash_refresh_token(token: str) -> bytes:
    # The tokens are 256 random bits: a fast hash is enough, and a stolen table is useless.
    return hashlib.sha256(token.encode("utf-8")).digest()


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


async def start(
    pool: asyncpg.Pool, issuer: Issuer, user: asyncpg.Record, email_key: str
) -> dict[str, Any]:
    """After a correct password: clear the email's failures, open a refresh family."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(queries.CLEAR_EMAIL_FAILURES, email_key)
        refresh = await _add_refresh_token(
            conn, uuid.uuid4(), user["id"], issuer.settings.refresh_token_ttl_seconds
        )
    metrics.TOKENS_ISSUED.labels("password").inc()
    return issuer.response(user["id"], user["username"], user["city"], refresh)


class Refused(enum.Enum):
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    REVOKED = "revoked"
    REUSED = "reused"


async def rotate(pool: asyncpg.Pool, issuer: Issuer, token: str) -> dict[str, Any] | Refused:
    """Spend `token` and hand out its successor; a spent token revokes its whole family (it
    was stolen, or the rightful client is replaying it: either way nobody may continue)."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(queries.LOCK_REFRESH_TOKEN, hash_refresh_token(token))
        if row is None:
            outcome: dict[str, Any] | Refused = Refused.UNKNOWN
        elif row["revoked"]:
            outcome = Refused.REVOKED
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
            await conn.execute(queries.SPEND_REFRESH_TOKEN, hash_refresh_token(token))
            refresh = await _add_refresh_token(
                conn, row["family_id"], row["user_id"], issuer.settings.refresh_token_ttl_seconds
            )
            outcome = issuer.response(row["user_id"], row["username"], row["city"], refresh)
    if isinstance(outcome, Refused):
        metrics.REFRESHES.labels(outcome.value).inc()
    else:
        metrics.REFRESHES.labels("rotated").inc()
        metrics.TOKENS_ISSUED.labels("refresh").inc()
    return outcome


async def end(pool: asyncpg.Pool, token: str) -> bool:
    """Logout: revoke the family `token` belongs to; False if no such token exists."""
    async with pool.acquire() as conn, conn.transaction():
        family = await conn.fetchval(queries.FAMILY_OF, hash_refresh_token(token))
        if family is None:
            return False
        await conn.execute(queries.REVOKE_FAMILY, family)
    return True
