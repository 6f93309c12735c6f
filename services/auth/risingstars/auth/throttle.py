"""Login and signup throttling whose state lives in PostgreSQL, so every replica enforces the
same limit.

Failed logins are counted per (email, address) and per address: an attacker guessing one
account's password is stopped after LOGIN_MAX_FAILURES, yet cannot lock its owner out, whose
correct password from another address still works. Signups are counted per address, every one
that passes the form's checks, before the answer says whether the email is registered.

An attempt is recorded as a failure *before* its password is checked (a correct password clears
the email's failures afterwards), and the check and the record happen under per-email and
per-address locks: twenty parallel guesses are judged one by one, so at most the limit of them
ever reaches the password check.
"""

from __future__ import annotations

import math

import asyncpg

from risingstars.auth import queries
from risingstars.auth.settings import Settings


def email_key(email: str) -> str:
    return email.strip().lower()


def _seconds(wait: float | None) -> int | None:
    """Whole seconds until the next attempt is allowed, or None when it is allowed now."""
    if wait is None or wait <= 0:
        return None
    return max(1, math.ceil(wait))


async def claim_attempt(
    conn: asyncpg.Connection, email: str, ip: str, settings: Settings
) -> int | None:
    """In the caller's transaction: None and the attempt recorded as a failure, or the whole
    seconds until an attempt is allowed (nothing recorded: throttled attempts do not extend the
    lockout). The locks are held until the caller's transaction ends."""
    # Always email before address, so two attempts never wait on each other in a cycle.
    await conn.execute(queries.ADVISORY_XACT_LOCK, f"login-email:{email_key(email)}")
    await conn.execute(queries.ADVISORY_XACT_LOCK, f"login-ip:{ip}")
    wait = _seconds(
        await conn.fetchval(
            queries.THROTTLE_WAIT,
            email_key(email),
            ip,
            float(settings.login_window_seconds),
            settings.login_max_failures,
            settings.login_max_failures_per_ip,
        )
    )
    if wait is None:
        await conn.execute(queries.RECORD_FAILURE, email_key(email), ip)
    return wait


async def claim_signup(conn: asyncpg.Connection, ip: str, settings: Settings) -> int | None:
    """In the caller's transaction: None and the signup recorded for `ip`, or the whole seconds
    until the address may sign up again."""
    await conn.execute(queries.ADVISORY_XACT_LOCK, f"signup-ip:{ip}")
    wait = _seconds(
        await conn.fetchval(
            queries.SIGNUP_WAIT,
            ip,
            float(settings.signup_window_seconds),
            settings.signup_max_per_ip,
        )
    )
    if wait is None:
        await conn.execute(queries.RECORD_SIGNUP, ip)
    return wait
