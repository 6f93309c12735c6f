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

from risingstars.kit import errors
from risingstars.upload import capacity, catalog, ingest, messages, metrics, reads, schemas, storage
from risingstars.upload.deps import Runtime, User, VideoId
from risingstars.upload.s3upload import StorageError

log = logging.getLogger("risingstars.upload.videos")
router = APIRouter(prefix="/api/videos", tags=["videos"])

UPLOAD_FORM = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["video_file", "title"],
                "properties": {
                    "video_file": {
                        "type": "string",
                        "format": "binary",
                        "description": "MP4, at most MAX_UPLOAD_BYTES (100 MB), 20–60 s, "
                        "shorter side at least 1080 px",
                    },
                    "title": {"type": "string", "minLength": 1, "maxLength": 200},
                },
            }
        }
    },
}

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


@router.post(
    "/upload",
    status_code=201,
    response_model=schemas.Uploaded,
    responses=schemas.errors(400, 401, 408, 429, 503),
    # The body is read as a stream by the handler, so it is described here.
    openapi_extra={"requestBody": UPLOAD_FORM},
)
async def upload(request: Request, user: User, rt: Runtime) -> Any:
    started = time.perf_counter()
    limits = rt.limits
    if ingest.too_large_by_length(request.headers.get("content-length"), limits):
        _record("stream", "rejected", "too_large", started)
        raise HTTPException(400, messages.too_large(limits.max_bytes))
    await catalog.check_quota(rt.pool, user.sub, rt.settings.upload_daily_quota)
    video_id = uuid.uuid4()
    key = storage.original_key(video_id)
    try:
        with rt.upload_slots.hold(user.sub):
            received = await ingest.receive(
                ingest.body_of(request.receive),
                request.headers.get("content-type"),
                s3=rt.s3,
                bucket=rt.settings.s3_bucket,
                key=key,
                buffers=rt.buffers,
                limits=limits,
                pace=rt.pace,
                parts_in_flight=rt.settings.upload_parts_in_flight,
            )
    except capacity.Refused as exc:
        _record("stream", exc.outcome, exc.reason, started)
        log.info("upload refused", extra={"reason": exc.reason, "user_id": user.sub})
        raise
    except ingest.BadUpload as exc:
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
        raise errors.Unavailable(messages.STORAGE_DOWN) from None
    try:
        video = catalog.NewVideo(
            video_id,
            catalog.Uploader.from_claims(user),
            received.title,
            received.size,
            received.info,
        )
        await catalog.register(rt.pool, rt.outbox, video)
    except DB_ERRORS as exc:
        _record("stream", "failed", "database", started)
        log.error("upload not recorded", extra={"error": repr(exc)})
        with contextlib.suppress(*storage.STORAGE_ERRORS, RuntimeError):
            await storage.delete_keys(rt.s3, rt.settings.s3_bucket, [key])
        raise errors.Unavailable(errors.DATABASE_DOWN) from None
    _record("stream", "accepted", "ok", started)
    log.info(
        "upload accepted",
        extra={"video_id": str(video_id), "bytes": received.size, "user_id": user.sub},
    )
    return {"message": messages.UPLOADED, "task_id": str(video_id), "video_id": str(video_id)}


@router.get("", response_model=list[schemas.VideoSummary], responses=schemas.errors(400, 401))
async def list_videos(
    user: User,
    rt: Runtime,
    limit: int = Query(100, ge=1, le=100),
    offset: int = Query(0, ge=0, le=1_000_000),
) -> Any:
    return await reads.own_videos(rt.pool, rt.links, rt.queue, user.sub, limit, offset)


@router.get(
    "/{video_id}", response_model=schemas.VideoDetail, responses=schemas.errors(401, 403, 404)
)
async def video_detail(user: User, video_id: VideoId, rt: Runtime) -> Any:
    return await reads.own_video(rt.pool, rt.links, rt.queue, video_id, user.sub)


@router.delete(
    "/{video_id}", response_model=schemas.Deleted, responses=schemas.errors(400, 401, 403, 404)
)
async def delete_video(user: User, video_id: VideoId, rt: Runtime) -> Any:
    await catalog.delete(rt.pool, rt.outbox, video_id, user.sub)
    log.info("video deleted", extra={"video_id": str(video_id), "user_id": user.sub})
    return {"message": messages.DELETED, "video_id": str(video_id)}
