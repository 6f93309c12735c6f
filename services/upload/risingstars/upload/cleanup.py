"""Abandoned uploads: direct-to-S3 uploads never completed, and any multipart upload left
behind by a process that died mid-stream, are aborted once older than the configured age.
Safe on every replica at once (aborting twice is harmless)."""

from __future__ import annotations

import asyncio
import datetime
import logging
import random
from typing import Any

import asyncpg

from risingstars.upload import queries, storage
from risingstars.upload.s3upload import abort_upload

log = logging.getLogger("risingstars.upload.cleanup")

PREFIX = "originals/"


class Sweeper:
    def __init__(
        self,
        pool: asyncpg.Pool,
        s3: Any,
        *,
        bucket: str,
        max_age_seconds: float,
        interval_seconds: float,
    ) -> None:
        self.pool = pool
        self.s3 = s3
        self.bucket = bucket
        self.max_age = max_age_seconds
        self.interval = interval_seconds
        # Keys this process is streaming into right now.
        self.active: set[str] = set()

    async def sweep(self, max_age_seconds: float | None = None) -> int:
        """Abort what is older than the age limit; return how many uploads were aborted."""
        age = self.max_age if max_age_seconds is None else max_age_seconds
        expired = await self.pool.fetch(queries.EXPIRE_DIRECT, float(age))
        aborted = 0
        for row in expired:
            key = storage.original_key(row["video_id"])
            if await abort_upload(self.s3, self.bucket, key, row["s3_upload_id"]):
                aborted += 1
        live = {r["s3_upload_id"] for r in await self.pool.fetch(queries.LIVE_DIRECT)}
        cutoff = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=age)
        paginator = self.s3.get_paginator("list_multipart_uploads")
        async for page in paginator.paginate(Bucket=self.bucket, Prefix=PREFIX):
            for upload in page.get("Uploads", []):
                # S3 emulators may report a made-up Initiated date: uploads known to be alive
                # (a direct upload not yet expired, a stream of this process) are never touched.
                if (
                    upload["Initiated"] <= cutoff
                    and upload["UploadId"] not in live
                    and upload["Key"] not in self.active
                    and await abort_upload(self.s3, self.bucket, upload["Key"], upload["UploadId"])
                ):
                    aborted += 1
        if aborted:
            log.info("abandoned uploads aborted", extra={"count": aborted})
        return aborted

    async def run(self) -> None:
        # Replicas started together should not sweep in lockstep.
        await asyncio.sleep(random.uniform(0.1, 1.0) * min(self.interval, 60))
        while True:
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("cleanup pass failed", extra={"error": repr(exc)})
            await asyncio.sleep(self.interval)
