"""Video records changed together with their outbox messages: an upload recorded with its job,
a deleted video with its stored files (the reads are in `reads.py`)."""

from __future__ import annotations

import dataclasses
import json
import uuid

import asyncpg

from risingstars.kit import errors
from risingstars.kit.tokens import Claims
from risingstars.upload import messages, outbox, queries, storage
from risingstars.upload.mp4 import Mp4Info
from risingstars.upload.outbox import Outbox
from risingstars.upload.text import city_key


@dataclasses.dataclass(frozen=True)
class Uploader:
    user_id: str
    username: str
    city: str

    @classmethod
    def from_claims(cls, claims: Claims) -> Uploader:
        return cls(claims.sub, claims.username or claims.sub, claims.city)


@dataclasses.dataclass(frozen=True)
class NewVideo:
    video_id: uuid.UUID
    uploader: Uploader
    title: str
    size: int
    info: Mp4Info


async def record(conn: asyncpg.Connection, box: Outbox, video: NewVideo) -> outbox.Delivery:
    """The video, its job and its quota ledger entry, in the caller's transaction."""
    uploader, info = video.uploader, video.info
    await conn.execute(
        queries.INSERT_VIDEO,
        video.video_id,
        uploader.user_id,
        uploader.username,
        uploader.city,
        city_key(uploader.city),
        video.title,
        storage.original_key(video.video_id),
        video.size,
        info.duration_seconds,
        info.width,
        info.height,
    )
    await conn.execute(queries.INSERT_LEDGER, video.video_id, uploader.user_id)
    return await box.add(conn, outbox.JOB, video.video_id, outbox.job_message(video.video_id))


async def delete(pool: asyncpg.Pool, box: Outbox, video_id: uuid.UUID, user_id: str) -> None:
    payload = json.dumps({"keys": storage.all_keys(video_id)})
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(queries.LOCK_VIDEO, video_id)
        if row is None:
            raise errors.NotFound(messages.NOT_FOUND)
        if row["user_id"] != user_id:
            raise errors.Forbidden(messages.FORBIDDEN)
        if row["status"] == "processed":
            raise errors.Invalid(messages.ALREADY_PUBLIC)
        await conn.execute(queries.DELETE_PENDING_JOB, video_id)
        await conn.execute(queries.DELETE_VIDEO, video_id)
        delivery = await box.add(conn, outbox.DELETE_OBJECTS, video_id, payload)
    await box.deliver_now(delivery)
