"""Login throttling whose state lives in PostgreSQL, so every replica enforces the same limit."""

from __future__ import annotations

import math

import asyncpg

from risingstars.auth import queries
from risingstars.auth.settings import Settings


def email_key(email: str) -> str:
    return email.strip().lower()


async def wait_seconds(
    conn: asyncpg.Connection | asyncpg.Pool, email: str, ip: str, settings: Settings
) -> int | None:
    """Whole seconds until the next attempt is allowed, or None when it is allowed now."""
    wait = await conn.fetchval(
        queries.THROTTLE_WAIT,
        email_key(email),
        ip,
        float(settings.login_window_seconds),
        settings.login_max_failures,
        settings.login_max_failures_per_ip,
    )
    if wait is None or wait <= 0:
        return None
    return max(1, math.ceil(wait))


async def record_failure(pool: asyncpg.Pool, email: str, ip: str) -> None:
    await pool.execute(queries.RECORD_FAILURE, email_key(email), ip)
