"""What clients read: their own videos, one video's detail, the public list; each row shaped as
the contract says, with its download links. The reads of the service; the writes live in
`catalog.py` (streamed and direct uploads, deletes) and `votes.py`."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

import asyncpg

from risingstars.kit import errors
from risingstars.upload import messages, queries
from risingstars.upload.jobqueue import JobQueue
from risingstars.upload.storage import Links

# Deep offsets make PostgreSQL walk and drop every row before them (finding 10.20): public pages
# go this deep at most; further is what the `city` filter is for.
PUBLIC_MAX_OFFSET = 1000


def iso(moment: datetime.datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z")


async def own_videos(
    pool: asyncpg.Pool, links: Links, queue: JobQueue, user_id: str, limit: int, offset: int
) -> list[dict[str, Any]]:
    rows = await pool.fetch(queries.LIST_OWN, user_id, limit, offset)
    return [
        {
            "video_id": str(r["id"]),
            "title": r["title"],
            "status": r["status"],
            "uploaded_at": iso(r["uploaded_at"]),
            "processed_at": iso(r["processed_at"]),
            "processed_url": await _processed(links, r, "processed_key"),
            # Extension.
            "queue": queue.place(r["status"], r["uploaded_at"]),
        }
        for r in rows
    ]


async def own_video(
    pool: asyncpg.Pool, links: Links, queue: JobQueue, video_id: uuid.UUID, user_id: str
) -> dict[str, Any]:
    row = await pool.fetchrow(queries.GET_VIDEO, video_id)
    if row is None:
        raise errors.NotFound(messages.NOT_FOUND)
    if row["user_id"] != user_id:
        raise errors.Forbidden(messages.FORBIDDEN)
    return {
        "video_id": str(row["id"]),
        "title": row["title"],
        "status": row["status"],
        "uploaded_at": iso(row["uploaded_at"]),
        "processed_at": iso(row["processed_at"]),
        "original_url": await links.url(row["original_key"]),
        "processed_url": await _processed(links, row, "processed_key"),
        "votes": row["votes"],
        # Extensions.
        "thumbnail_url": await _processed(links, row, "thumbnail_key"),
        "failure_reason": messages.failure(row["failure_reason"]),
        "failure_code": row["failure_reason"],
        "size_bytes": row["size_bytes"],
        "duration_seconds": row["duration_seconds"],
        "width": row["width"],
        "height": row["height"],
        "queue": queue.place(row["status"], row["uploaded_at"]),
    }


async def _processed(links: Links, row: asyncpg.Record, column: str) -> str | None:
    if row["status"] != "processed":
        return None
    return await links.media_url(row[column])


async def public_videos(
    pool: asyncpg.Pool, links: Links, limit: int, offset: int, city: str | None
) -> list[dict[str, Any]]:
    """Processed videos, newest first; `city` is a city key (`text.city_key`)."""
    if city is None:
        rows = await pool.fetch(queries.PUBLIC_LIST, limit, offset)
    else:
        rows = await pool.fetch(queries.PUBLIC_LIST_CITY, limit, offset, city)
    return [
        {
            "video_id": str(r["id"]),
            "title": r["title"],
            "username": r["username"],
            "city": r["city"],
            "processed_url": await links.media_url(r["processed_key"]),
            "votes": r["votes"],
        }
        for r in rows
    ]
