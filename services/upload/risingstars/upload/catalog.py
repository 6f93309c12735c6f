"""Video records changed together with their outbox messages: registering an uploaded video
with its processing job, deleting one with its stored files."""

from __future__ import annotations

import dataclasses
import datetime
import uuid
from typing import Any

import asyncpg
from fastapi import HTTPException

from risingstars.kit.tokens import Claims
from risingstars.upload import messages, outbox, queries, storage
from risingstars.upload.mp4 import Mp4Info
from risingstars.upload.runtime import Runtime
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
class Delivery:
    outbox_id: int
    kind: str
    payload: dict[str, Any]


async def record(
    conn: asyncpg.Connection,
    rt: Runtime,
    video_id: uuid.UUID,
    uploader: Uploader,
    title: str,
    size: int,
    info: Mp4Info,
) -> Delivery:
    """Insert the video and its processing job inside the caller's transaction."""
    job = outbox.job_message(video_id)
    await conn.execute(
        queries.INSERT_VIDEO,
        video_id,
        uploader.user_id,
        uploader.username,
        uploader.city,
        city_key(uploader.city),
        title,
        storage.original_key(video_id),
        size,
        info.duration_seconds,
        info.width,
        info.height,
    )
    outbox_id = await outbox.add(
        conn, outbox.JOB, video_id, job, grace_seconds=rt.settings.outbox_grace_seconds
    )
    return Delivery(outbox_id, outbox.JOB, job)


async def deliver(rt: Runtime, delivery: Delivery) -> None:
    """Send right after the commit; the relay sends it later if that fails now."""
    await rt.outbox.deliver_now(delivery.outbox_id, delivery.kind, delivery.payload)


async def register(
    rt: Runtime, video_id: uuid.UUID, uploader: Uploader, title: str, size: int, info: Mp4Info
) -> None:
    """Record a stored upload and its job in one transaction, then send the job."""
    async with rt.pool.acquire() as conn, conn.transaction():
        delivery = await record(conn, rt, video_id, uploader, title, size, info)
    await deliver(rt, delivery)


async def delete(rt: Runtime, video_id: uuid.UUID, user_id: str) -> None:
    payload = {"keys": storage.all_keys(video_id)}
    async with rt.pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(queries.LOCK_VIDEO, video_id)
        if row is None:
            raise HTTPException(404, messages.NOT_FOUND)
        if row["user_id"] != user_id:
            raise HTTPException(403, messages.FORBIDDEN)
        if row["status"] == "processed":
            raise HTTPException(400, messages.ALREADY_PUBLIC)
        await conn.execute(queries.DELETE_PENDING_JOB, video_id)
        await conn.execute(queries.DELETE_VIDEO, video_id)
        outbox_id = await outbox.add(
            conn,
            outbox.DELETE_OBJECTS,
            video_id,
            payload,
            grace_seconds=rt.settings.outbox_grace_seconds,
        )
    await deliver(rt, Delivery(outbox_id, outbox.DELETE_OBJECTS, payload))


def iso(moment: datetime.datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z")
