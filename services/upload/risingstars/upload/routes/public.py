"""Public side: processed videos, votes, player rankings."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request, Response

from risingstars.kit import errors
from risingstars.upload import messages, reads, schemas, votes
from risingstars.upload.deps import Runtime, User, VideoId
from risingstars.upload.text import CITY_MAX, VISIBLE_PATTERN, city_key

router = APIRouter(prefix="/api/public", tags=["public"])
# Stated in the document, checked by `_city` (with the contract's message).
CITY_DOC = {"pattern": VISIBLE_PATTERN}


def _city(city: str | None) -> str | None:
    if city is None:
        return None
    key = city_key(city)
    if not key:
        raise errors.Invalid(messages.INVALID_CITY, code="invalid_city")
    return key


@router.get("/videos", response_model=list[schemas.PublicVideo], responses=schemas.errors(400))
async def public_videos(
    rt: Runtime,
    request: Request,
    response: Response,
    limit: int = Query(20, ge=1, le=100),
    offset: int = Query(0, ge=0, le=reads.PUBLIC_MAX_OFFSET),
    city: str | None = Query(None, min_length=1, max_length=CITY_MAX, json_schema_extra=CITY_DOC),
    after: str | None = Query(
        None,
        min_length=1,
        max_length=200,
        # Stated in the document, checked by `reads` (with the contract's message).
        json_schema_extra={"pattern": reads.CURSOR_PATTERN},
        description="Extension: the cursor of the page before, from its `Link: rel=next` "
        "header; pages at any depth (offset stops at 1000).",
    ),
) -> Any:
    page = await reads.public_videos(rt.pool, rt.links, limit, offset, _city(city), after)
    if page.after is not None:
        query = {"limit": limit, "after": page.after} | ({"city": city} if city else {})
        response.headers["Link"] = f'<{request.url.path}?{urlencode(query)}>; rel="next"'
    return page.items


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
    city: str | None = Query(None, min_length=1, max_length=CITY_MAX, json_schema_extra=CITY_DOC),
    limit: int = Query(10, ge=1, le=100),
    offset: int = Query(0, ge=0, le=1_000_000),
) -> Response:
    _city(city)
    body = await rt.rankings.page(city, limit, offset)
    return Response(body, media_type="application/json")
