"""Signing up, creating and reading accounts."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from risingstars.auth import metrics, queries, throttle, usernames, validation
from risingstars.auth.passwords import Hasher
from risingstars.auth.settings import Settings
from risingstars.auth.validation import SignupForm
from risingstars.kit import errors

CREATED = "Usuario creado exitosamente."


class EmailTaken(errors.Invalid):
    """The contract answers an email already registered with 400, naming it."""

    code = "email_taken"

    def __init__(self, email: str) -> None:
        super().__init__(f"El email {email} ya está registrado")


class UsernameTaken(errors.Invalid):
    code = "username_taken"

    def __init__(self, username: str) -> None:
        super().__init__(f"El nombre de usuario {username} ya está en uso")


class SignupsThrottled(errors.TooMany):
    code = "signups_throttled"

    def __init__(self, seconds: int) -> None:
        super().__init__(
            f"Demasiados registros desde esta dirección. Intente de nuevo en {seconds} segundos.",
            retry_after_seconds=seconds,
        )


async def signup(
    pool: asyncpg.Pool, hasher: Hasher, settings: Settings, form: SignupForm, ip: str
) -> dict[str, Any]:
    """Create the account; the answer's public fields. Every signup past the form's checks is
    counted against its address before anything says whether the email is registered, so the
    answer "already registered" cannot be asked for more often than a signup."""
    weak = validation.weak_password_reason(
        form.password, settings.password_min_length, email_address=form.email
    )
    if weak:
        raise errors.Invalid(weak, code="weak_password")
    async with pool.acquire() as conn, conn.transaction():
        wait = await throttle.claim_signup(conn, ip, settings)
    if wait:
        metrics.SIGNUPS_THROTTLED.inc()
        raise SignupsThrottled(wait)
    # Checked before the (deliberately slow) hash; the insert still catches a racing signup.
    if await pool.fetchval(queries.EMAIL_TAKEN, form.email):
        raise EmailTaken(form.email)
    user = await create(pool, form, await hasher.hash(form.password))
    metrics.SIGNUPS.inc()
    return {"message": CREATED, **public(user)}


async def create(pool: asyncpg.Pool, form: SignupForm, password_hash: str) -> asyncpg.Record:
    """Insert the account; a chosen username must be free, a derived one is made unique."""
    names = iter([form.username]) if form.username else usernames.candidates(form.first_name)
    for name in names:
        try:
            return await pool.fetchrow(
                queries.INSERT_USER,
                uuid.uuid4(),
                form.email,
                name,
                form.first_name,
                form.last_name,
                form.city,
                form.country,
                password_hash,
            )
        except asyncpg.UniqueViolationError as exc:
            # Another signup with the same email can win the race after our check.
            if exc.constraint_name == "users_email_key":
                raise EmailTaken(form.email) from None
            if exc.constraint_name != "users_username_key":
                raise
            if form.username:
                raise UsernameTaken(form.username) from None
    raise UsernameTaken(usernames.base(form.first_name))


async def by_id(pool: asyncpg.Pool, user_id: str) -> asyncpg.Record | None:
    try:
        key = uuid.UUID(user_id)
    except ValueError:
        return None
    return await pool.fetchrow(queries.USER_BY_ID, key)


def public(user: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": str(user["id"]),
        "email": user["email"],
        "username": user["username"],
        "first_name": user["first_name"],
        "last_name": user["last_name"],
        "city": user["city"],
        "country": user["country"],
        "created_at": user["created_at"].isoformat(),
    }
