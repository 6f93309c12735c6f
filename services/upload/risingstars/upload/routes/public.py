"""Public side: processed videos, votes, player rankings."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Query, Response

from risingstars.upload import messages, metrics, queries
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


@router.get("/videos")
async def public_videos(
    rt: Runtime,
    limit: int = Query(20, ge=1, le=100),
    offset: int = Query(0, ge=0, le=1_000_000),
    city: str | None = Query(None, min_length=1, max_length=CITY_MAX),
) -> Any:
    key = _city(city)
    if key is None:
        rows = await rt.pool.fetch(queries.PUBLIC_LIST, limit, offset)
    else:
        rows = await rt.pool.fetch(queries.PUBLIC_LIST_CITY, limit, offset, key)
    return [
        {
            "video_id": str(r["id"]),
            "title": r["title"],
            "username": r["username"],
            "city": r["city"],
            "processed_url": await rt.links.url(r["processed_key"]),
            "votes": r["votes"],
        }
        for r in rows
    ]


@router.post("/videos/{video_id}/vote")
async def vote(user: User, video_id: VideoId, rt: Runtime) -> Any:
    async with rt.pool.acquire() as conn, conn.transaction():
        counted = await conn.fetchval(queries.INSERT_VOTE, video_id, user.sub)
        if counted:
            await conn.execute(queries.COUNT_VOTE, video_id)
            public = True
        else:
            public = await conn.fetchval(queries.IS_PUBLIC, video_id)
    if not counted:
        if not public:
            metrics.VOTES.labels("not_found").inc()
            raise HTTPException(404, messages.NOT_FOUND)
        metrics.VOTES.labels("duplicate").inc()
        raise HTTPException(400, messages.ALREADY_VOTED)
    metrics.VOTES.labels("counted").inc()
    return {"message": messages.VOTED}


@router.get("/rankings")
async def rankings(
    rt: Runtime,
    city: str | None = Query(None, min_length=1, max_length=CITY_MAX),
    limit: int = Query(10, ge=1, le=100),
    offset: int = Query(0, ge=0, le=1_000_000),
) -> Response:
    _city(city)
    body = await rt.rankings.page(city, limit, offset)
    return Response(body, media_type="application/json")
