"""What clients read: their videos, one video's detail, the public list (the writes are in
`catalog.py` and `votes.py`)."""

from __future__ import annotations

import base64
import dataclasses
import datetime
import re
import uuid
from typing import Any

import asyncpg

from risingstars.kit import errors
from risingstars.upload import messages, queries
from risingstars.upload.queue_positions import QueuePositions
from risingstars.upload.storage import Links

# Deep offsets make PostgreSQL walk and drop every row before them (finding 10.20): public pages
# go this deep at most by offset; deeper pages follow the `after` cursor.
PUBLIC_MAX_OFFSET = 1000


def iso(moment: datetime.datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z")


async def own_videos(
    pool: asyncpg.Pool, links: Links, queue: QueuePositions, user_id: str, limit: int, offset: int
) -> list[dict[str, Any]]:
    rows = await pool.fetch(queries.LIST_OWN, user_id, limit, offset)
    return [await _summary(links, queue, row) for row in rows]


async def own_video(
    pool: asyncpg.Pool, links: Links, queue: QueuePositions, video_id: uuid.UUID, user_id: str
) -> dict[str, Any]:
    row = await pool.fetchrow(queries.GET_VIDEO, video_id)
    if row is None:
        raise errors.NotFound(messages.NOT_FOUND)
    if row["user_id"] != user_id:
        raise errors.Forbidden(messages.FORBIDDEN)
    return await _summary(links, queue, row) | {
        "original_url": await links.url(row["original_key"]),
        "votes": row["votes"],
        # Extensions.
        "thumbnail_url": await _processed(links, row, "thumbnail_key"),
        "failure_reason": messages.failure(row["failure_reason"]),
        "failure_code": row["failure_reason"],
        "size_bytes": row["size_bytes"],
        "duration_seconds": row["duration_seconds"],
        "width": row["width"],
        "height": row["height"],
    }


async def _summary(links: Links, queue: QueuePositions, row: asyncpg.Record) -> dict[str, Any]:
    return {
        "video_id": str(row["id"]),
        "title": row["title"],
        "status": row["status"],
        "uploaded_at": iso(row["uploaded_at"]),
        "processed_at": iso(row["processed_at"]),
        "processed_url": await _processed(links, row, "processed_key"),
        # Extension.
        "queue": queue.place(row["status"], row["uploaded_at"]),
    }


async def _processed(links: Links, row: asyncpg.Record, column: str) -> str | None:
    if row["status"] != "processed":
        return None
    return await links.media_url(row[column])


@dataclasses.dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    after: str | None  # the next page's cursor


def cursor(processed_at: datetime.datetime, video_id: uuid.UUID) -> str:
    raw = f"{processed_at.isoformat()}|{video_id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


# What `cursor` writes: unpadded URL-safe base64 (the document states it).
CURSOR_PATTERN = "^[A-Za-z0-9_-]+$"


def _position(after: str) -> tuple[datetime.datetime, uuid.UUID]:
    try:
        if not re.fullmatch(CURSOR_PATTERN, after):
            raise ValueError("not a cursor")
        raw = base64.urlsafe_b64decode(after + "=" * (-len(after) % 4)).decode()
        moment, video_id = raw.split("|")
        parsed = datetime.datetime.fromisoformat(moment)
        if parsed.tzinfo is None:
            raise ValueError("naive")
        # In UTC: a moment near year 1 or 9999 may fall outside what either can hold.
        return parsed.astimezone(datetime.UTC), uuid.UUID(video_id)
    except (ValueError, OverflowError) as exc:  # also binascii.Error and UnicodeDecodeError
        raise errors.Invalid(messages.INVALID_CURSOR, code="invalid_cursor") from exc


async def public_videos(
    pool: asyncpg.Pool,
    links: Links,
    limit: int,
    offset: int,
    city: str | None,
    after: str | None = None,
) -> Page:
    """Processed videos, newest first, by `offset` or `after` (the previous page's cursor)."""
    if after is not None:
        moment, video_id = _position(after)
        if city is None:
            rows = await pool.fetch(queries.PUBLIC_AFTER, limit, moment, video_id)
        else:
            rows = await pool.fetch(queries.PUBLIC_AFTER_CITY, limit, moment, video_id, city)
    elif city is None:
        rows = await pool.fetch(queries.PUBLIC_LIST, limit, offset)
    else:
        rows = await pool.fetch(queries.PUBLIC_LIST_CITY, limit, offset, city)
    items = [
        {
            "video_id": str(r["id"]),
            "title": r["title"],
            "username": r["username"],
            "city": r["city"],
            "processed_url": await links.media_url(r["processed_key"]),
            "votes": r["votes"],
            # Extension: the showcase's grid shows each video's picture before any video byte.
            "thumbnail_url": await links.media_url(r["thumbnail_key"]),
        }
        for r in rows
    ]
    last = rows[-1] if len(rows) == limit else None
    return Page(items, cursor(last["processed_at"], last["id"]) if last else None)
