"""The owner's videos: streaming upload, list, detail, delete."""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from typing import Any

import asyncpg
from fastapi import APIRouter, HTTPException, Query, Request, Response
from starlette.requests import ClientDisconnect

from risingstars.upload import catalog, ingest, messages, metrics, queries, storage
from risingstars.upload.deps import Runtime, User, VideoId
from risingstars.upload.s3upload import StorageError

log = logging.getLogger("risingstars.upload.videos")
router = APIRouter(prefix="/api/videos", tags=["videos"])

DB_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
    TimeoutError,
)


def _record(path: str, outcome: str, reason: str, started: float) -> None:
    metrics.UPLOADS.labels(path, outcome, reason).inc()
    metrics.UPLOAD_DURATION.labels(outcome).observe(time.perf_counter() - started)


@router.post("/upload", status_code=201)
async def upload(request: Request, user: User, rt: Runtime) -> Any:
    started = time.perf_counter()
    limits = rt.limits
    if ingest.too_large_by_length(request.headers.get("content-length"), limits):
        _record("stream", "rejected", "too_large", started)
        raise HTTPException(400, messages.too_large(limits.max_bytes))
    video_id = uuid.uuid4()
    key = storage.original_key(video_id)
    rt.sweeper.active.add(key)
    try:
        received = await ingest.receive(
            request.stream(),
            request.headers.get("content-type"),
            s3=rt.s3,
            bucket=rt.settings.s3_bucket,
            key=key,
            buffers=rt.buffers,
            limits=limits,
            parts_in_flight=rt.settings.upload_parts_in_flight,
        )
    except ingest.Rejected as exc:
        _record("stream", "rejected", exc.reason, started)
        log.info("upload rejected", extra={"reason": exc.reason, "detail": exc.detail})
        raise HTTPException(400, exc.detail) from None
    except ClientDisconnect:
        _record("stream", "aborted", "disconnect", started)
        log.info("upload abandoned by the client")
        return Response(status_code=400)
    except StorageError as exc:
        _record("stream", "failed", "storage", started)
        log.error("upload could not be stored", extra={"error": str(exc)})
        raise HTTPException(503, messages.STORAGE_DOWN, headers={"Retry-After": "5"}) from None
    finally:
        rt.sweeper.active.discard(key)
    try:
        await catalog.register(
            rt,
            video_id,
            catalog.Uploader.from_claims(user),
            received.title,
            received.size,
            received.info,
        )
    except DB_ERRORS as exc:
        _record("stream", "failed", "database", started)
        log.error("upload not recorded", extra={"error": repr(exc)})
        with contextlib.suppress(*storage.STORAGE_ERRORS, RuntimeError):
            await storage.delete_keys(rt.s3, rt.settings.s3_bucket, [key])
        raise HTTPException(503, messages.DATABASE_DOWN, headers={"Retry-After": "5"}) from None
    _record("stream", "accepted", "ok", started)
    log.info(
        "upload accepted",
        extra={"video_id": str(video_id), "bytes": received.size, "user_id": user.sub},
    )
    return {"message": messages.UPLOADED, "task_id": str(video_id), "video_id": str(video_id)}


@router.get("")
async def list_videos(
    user: User,
    rt: Runtime,
    limit: int = Query(100, ge=1, le=100),
    offset: int = Query(0, ge=0, le=1_000_000),
) -> Any:
    rows = await rt.pool.fetch(queries.LIST_OWN, user.sub, limit, offset)
    return [
        {
            "video_id": str(r["id"]),
            "title": r["title"],
            "status": r["status"],
            "uploaded_at": catalog.iso(r["uploaded_at"]),
            "processed_at": catalog.iso(r["processed_at"]),
            "processed_url": await _processed_url(rt, r),
        }
        for r in rows
    ]


async def _processed_url(rt: Any, row: Any) -> str | None:
    if row["status"] != "processed":
        return None
    return await rt.links.url(row["processed_key"])


@router.get("/{video_id}")
async def video_detail(user: User, video_id: VideoId, rt: Runtime) -> Any:
    row = await rt.pool.fetchrow(queries.GET_VIDEO, video_id)
    if row is None:
        raise HTTPException(404, messages.NOT_FOUND)
    if row["user_id"] != user.sub:
        raise HTTPException(403, messages.FORBIDDEN)
    processed = row["status"] == "processed"
    return {
        "video_id": str(row["id"]),
        "title": row["title"],
        "status": row["status"],
        "uploaded_at": catalog.iso(row["uploaded_at"]),
        "processed_at": catalog.iso(row["processed_at"]),
        "original_url": await rt.links.url(row["original_key"]),
        "processed_url": await rt.links.url(row["processed_key"]) if processed else None,
        "votes": row["votes"],
        # Extensions.
        "thumbnail_url": await rt.links.url(row["thumbnail_key"]) if processed else None,
        "failure_reason": row["failure_reason"],
        "size_bytes": row["size_bytes"],
        "duration_seconds": row["duration_seconds"],
        "width": row["width"],
        "height": row["height"],
    }


@router.delete("/{video_id}")
async def delete_video(user: User, video_id: VideoId, rt: Runtime) -> Any:
    await catalog.delete(rt, video_id, user.sub)
    log.info("video deleted", extra={"video_id": str(video_id), "user_id": user.sub})
    return {"message": messages.DELETED, "video_id": str(video_id)}
