"""Where videos live in S3, and the links clients get to them."""

from __future__ import annotations

import uuid
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

ORIGINALS_PREFIX = "originals/"
PROCESSED_PREFIX = "processed/"


def original_key(video_id: uuid.UUID | str) -> str:
    return f"{ORIGINALS_PREFIX}{video_id}.mp4"


def processed_key(video_id: uuid.UUID | str) -> str:
    return f"{PROCESSED_PREFIX}{video_id}.mp4"


def thumbnail_key(video_id: uuid.UUID | str) -> str:
    return f"{PROCESSED_PREFIX}{video_id}.jpg"


def all_keys(video_id: uuid.UUID) -> list[str]:
    return [original_key(video_id), processed_key(video_id), thumbnail_key(video_id)]


class Links:
    """Presigned GETs, or the media base URL (a CDN) for processed outputs only."""

    def __init__(self, s3: Any, bucket: str, *, ttl_seconds: int, media_base_url: str | None):
        self.s3 = s3
        self.bucket = bucket
        self.ttl = ttl_seconds
        self.media_base = media_base_url.rstrip("/") if media_base_url else None

    async def url(self, key: str | None) -> str | None:
        if not key:
            return None
        return await self.s3.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=self.ttl
        )

    async def media_url(self, key: str | None) -> str | None:
        if key and self.media_base and key.startswith(PROCESSED_PREFIX):
            return f"{self.media_base}/{key}"
        return await self.url(key)


async def delete_keys(s3: Any, bucket: str, keys: list[str]) -> None:
    """Delete objects (absent ones are fine); raises on failure so callers can retry."""
    if not keys:
        return
    response = await s3.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True}
    )
    errors = response.get("Errors") or []
    if errors:
        raise RuntimeError(f"DeleteObjects failed for {[e.get('Key') for e in errors]}")


async def read_range(s3: Any, bucket: str, key: str, offset: int, length: int) -> bytes:
    response = await s3.get_object(
        Bucket=bucket, Key=key, Range=f"bytes={offset}-{offset + length - 1}"
    )
    async with response["Body"] as body:
        return await body.read()


STORAGE_ERRORS = (BotoCoreError, ClientError)
