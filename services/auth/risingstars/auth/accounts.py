"""Creating and reading accounts."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from risingstars.auth import queries, usernames
from risingstars.auth.validation import SignupForm


class EmailTaken(Exception):
    pass


class UsernameTaken(Exception):
    pass


async def email_taken(pool: asyncpg.Pool, email: str) -> bool:
    return bool(await pool.fetchval(queries.EMAIL_TAKEN, email))


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
