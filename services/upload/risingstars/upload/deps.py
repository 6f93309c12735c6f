"""FastAPI dependencies, all async: FastAPI runs plain `def` ones in a thread pool."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Request

from risingstars.kit import errors
from risingstars.kit.tokens import Claims, current_claims
from risingstars.upload import messages
from risingstars.upload.runtime import Runtime as _Runtime


async def runtime(request: Request) -> _Runtime:
    return request.app.state.runtime


Runtime = Annotated[_Runtime, Depends(runtime)]
User = Annotated[Claims, Depends(current_claims)]


def parse_id(raw: str, detail: str = messages.NOT_FOUND) -> uuid.UUID:
    """Ids that cannot be parsed are as absent as unknown ones: 404."""
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise errors.NotFound(detail) from None


async def video_id(video_id: str) -> uuid.UUID:
    return parse_id(video_id)


async def upload_id(upload_id: str) -> uuid.UUID:
    return parse_id(upload_id, messages.UPLOAD_NOT_FOUND)


VideoId = Annotated[uuid.UUID, Depends(video_id)]
UploadId = Annotated[uuid.UUID, Depends(upload_id)]
