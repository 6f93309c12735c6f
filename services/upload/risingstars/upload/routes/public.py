"""Public side: processed videos, votes, player rankings."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Query, Response

from risingstars.upload import messages, reads, schemas, votes
from risingstars.upload.deps import Runtime, User, VideoId
from risingstars.upload.text import CITY_MAX, city_key

router = APIRouter(prefix="/api/public", tags=["public"])

INVALID_CITY = "Parámetro inválido: city"


def _city(city: str | None) -> str | None:
    if city is None:
        return None
    key = city_key(city)
    if not key:
        raise HTTPException(400, INVALID_CITY)
    return key


@router.get("/videos", response_model=list[schemas.PublicVideo], responses=schemas.errors(400))
async def public_videos(
    rt: Runtime,
    limit: int = Query(20, ge=1, le=100),
    offset: int = Query(0, ge=0, le=reads.PUBLIC_MAX_OFFSET),
    city: str | None = Query(None, min_length=1, max_length=CITY_MAX),
) -> Any:
    return await reads.public_videos(rt.pool, rt.links, limit, offset, _city(city))


@router.post(
    "/videos/{video_id}/vote",
    response_model=schemas.Voted,
    responses=schemas.errors(400, 401, 404),
)
async def vote(user: User, video_id: VideoId, rt: Runtime) -> Any:
    await votes.cast(rt.pool, video_id, user.sub)
    return {"message": messages.VOTED}


@router.get("/rankings", response_model=list[schemas.Ranking], responses=schemas.errors(400, 503))
async def rankings(
    rt: Runtime,
    city: str | None = Query(None, min_length=1, max_length=CITY_MAX),
    limit: int = Query(10, ge=1, le=100),
    offset: int = Query(0, ge=0, le=1_000_000),
) -> Response:
    _city(city)
    body = await rt.rankings.page(city, limit, offset)
    return Response(body, media_type="application/json")
