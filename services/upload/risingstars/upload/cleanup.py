"""Abandoned direct and multipart uploads are aborted once older than the configured age. An
upload's age is its newest part's, so a stream in progress is never taken for a dead one (some
S3 emulators report a made-up `Initiated` date). Safe on every replica at once."""

from __future__ import annotations

import datetime
import logging
from typing import TYPE_CHECKING, Any

from risingstars.upload import queries, storage
from risingstars.upload.s3upload import abort_upload

if TYPE_CHECKING:
    from risingstars.upload.resources import Clients

log = logging.getLogger("risingstars.upload.cleanup")


class Sweeper:
    def __init__(self, clients: Clients, *, bucket: str, max_age_seconds: float) -> None:
        self.pool, self.s3 = clients.pool, clients.s3
        self.bucket = bucket
        self.max_age = max_age_seconds

    async def sweep(
        self, max_age_seconds: float | None = None, orphan_age_seconds: float | None = None
    ) -> int:
        """Abort expired direct uploads and idle orphans (ages default to the configured one)."""
        age = self.max_age if max_age_seconds is None else max_age_seconds
        orphan_age = age if orphan_age_seconds is None else orphan_age_seconds
        expired = await self.pool.fetch(queries.EXPIRE_DIRECT, float(age))
        aborted = 0
        for row in expired:
            key = storage.original_key(row["video_id"])
            if await abort_upload(self.s3, self.bucket, key, row["s3_upload_id"]):
                aborted += 1
        live = {r["s3_upload_id"] for r in await self.pool.fetch(queries.LIVE_DIRECT)}
        cutoff = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=orphan_age)
        paginator = self.s3.get_paginator("list_multipart_uploads")
        async for page in paginator.paginate(Bucket=self.bucket, Prefix=storage.ORIGINALS_PREFIX):
            for upload in page.get("Uploads", []):
                # A direct upload not yet expired is alive whatever its age.
                if (
                    upload["UploadId"] not in live
                    and upload["Initiated"] <= cutoff
                    and await self._last_part_at(upload) <= cutoff
                    and await abort_upload(self.s3, self.bucket, upload["Key"], upload["UploadId"])
                ):
                    aborted += 1
        if aborted:
            log.info("abandoned uploads aborted", extra={"count": aborted})
        return aborted

    async def _last_part_at(self, upload: dict[str, Any]) -> datetime.datetime:
        response = await self.s3.list_parts(
            Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
        )
        times = [p["LastModified"] for p in response.get("Parts", [])]
        return max(times, default=upload["Initiated"])
