"""The owner's videos: streaming upload, list, detail, delete."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Query, Request

from risingstars.upload import catalog, messages, reads, schemas
from risingstars.upload.deps import Runtime, User, VideoId

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
                    "title": schemas.TITLE_SCHEMA,
                },
            }
        }
    },
}


@router.post(
    "/upload",
    status_code=201,
    response_model=schemas.Uploaded,
    responses=schemas.errors(400, 401, 408, 429, 503),
    # The body is read as a stream by the handler, so it is described here.
    openapi_extra={"requestBody": UPLOAD_FORM},
)
async def upload(request: Request, user: User, rt: Runtime) -> Any:
    owner = catalog.Uploader.from_claims(user)
    return await rt.streamed.upload(owner, request.headers, request.receive)


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
