"""Votes: one per user and public video, never for one's own."""

from __future__ import annotations

import uuid

import asyncpg

from risingstars.kit import errors
from risingstars.upload import messages, metrics, queries


async def cast(pool: asyncpg.Pool, video_id: uuid.UUID, user_id: str) -> None:
    async with pool.acquire() as conn, conn.transaction():
        counted = await conn.fetchval(queries.INSERT_VOTE, video_id, user_id)
        if counted:
            await conn.execute(queries.COUNT_VOTE, video_id)
            metrics.VOTES.labels("counted").inc()
            return
        owner = await conn.fetchval(queries.PUBLIC_OWNER, video_id)
    if owner is None:
        metrics.VOTES.labels("not_found").inc()
        raise errors.NotFound(messages.NOT_FOUND)
    if owner == user_id:
        metrics.VOTES.labels("own").inc()
        raise errors.Invalid(messages.OWN_VOTE, code="own_video")
    metrics.VOTES.labels("duplicate").inc()
    raise errors.Invalid(messages.ALREADY_VOTED, code="already_voted")
