"""Direct-to-S3 uploads (extension): the client PUTs the parts to presigned URLs, may ask which
are stored (to resume), then asks us to complete, with no database connection held (10.1)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
import math
import time
import uuid
from typing import Any

import asyncpg
from botocore.exceptions import ClientError

from risingstars.kit import aws, errors
from risingstars.upload import catalog, intake, messages, metrics, mp4, queries, reads, storage
from risingstars.upload.intake import Intake, OpenCap
from risingstars.upload.s3upload import abort_upload

log = logging.getLogger("risingstars.upload.direct")

OPEN_CAP = OpenCap(queries.OPEN_DIRECT, messages.open_uploads)


@dataclasses.dataclass(frozen=True)
class StoredPart:
    number: int
    size: int
    etag: str


def expected_sizes(size: int, part_bytes: int) -> list[int]:
    count = max(1, math.ceil(size / part_bytes))
    return [part_bytes] * (count - 1) + [size - part_bytes * (count - 1)]


def _check_parts(row: Any, parts: list[StoredPart]) -> list[StoredPart]:
    expected = expected_sizes(row["size_bytes"], row["part_bytes"])
    stored = {p.number: p for p in parts}
    missing = [n for n in range(1, len(expected) + 1) if n not in stored]
    if missing:
        raise errors.Invalid(messages.missing_parts(missing))
    wrong = [n for n, size in enumerate(expected, start=1) if stored[n].size != size]
    if wrong:
        raise errors.Invalid(messages.wrong_parts(wrong))
    return [stored[n] for n in range(1, len(expected) + 1)]


def _owned(row: Any, user_id: str) -> Any:
    if row is None:
        raise errors.NotFound(messages.UPLOAD_NOT_FOUND)
    if row["user_id"] != user_id:
        raise errors.Forbidden(messages.UPLOAD_FORBIDDEN)
    return row


@dataclasses.dataclass
class DirectUploads:
    intake: Intake
    part_bytes: int
    presign_ttl_seconds: int
    ttl_seconds: int
    complete_timeout_seconds: float

    async def create(self, user: catalog.Uploader, raw_title: str, size: int) -> dict[str, Any]:
        title = intake.title(raw_title)
        if size < 1:
            raise errors.Invalid(messages.BAD_SIZE, code="bad_size")
        self.intake.policy.check_size(size)
        video_id = uuid.uuid4()
        upload_id = uuid.uuid4()

        async def insert(conn: asyncpg.Connection, s3_upload_id: str) -> asyncpg.Record:
            return await conn.fetchrow(
                queries.INSERT_DIRECT, upload_id, video_id, s3_upload_id, user.user_id,
                user.username, user.city, title, size, self.part_bytes,
            )  # fmt: skip

        key = storage.original_key(video_id)
        row = await self.intake.open_multipart(user.user_id, key, OPEN_CAP, insert)
        return await self._describe(row, [])

    async def status(self, user_id: str, upload_id: uuid.UUID) -> dict[str, Any]:
        row = _owned(await self.intake.pool.fetchrow(queries.GET_DIRECT, upload_id), user_id)
        try:
            parts = await self._stored_parts(row)
        except storage.STORAGE_ERRORS as exc:
            raise intake.storage_down(exc) from None
        if parts is None:
            raise errors.NotFound(messages.UPLOAD_NOT_FOUND)
        return await self._describe(row, parts)

    async def cancel(self, user_id: str, upload_id: uuid.UUID) -> None:
        async with self.intake.pool.acquire() as conn, conn.transaction():
            row = _owned(await conn.fetchrow(queries.LOCK_DIRECT, upload_id), user_id)
            key = storage.original_key(row["video_id"])
            if not await abort_upload(self.intake.s3, self.intake.bucket, key, row["s3_upload_id"]):
                raise errors.Unavailable(messages.STORAGE_DOWN)
            await conn.execute(queries.DELETE_DIRECT, upload_id)

    async def complete(self, user_id: str, upload_id: uuid.UUID) -> dict[str, str]:
        started = time.perf_counter()
        row = _owned(await self.intake.pool.fetchrow(queries.GET_DIRECT, upload_id), user_id)
        try:
            async with asyncio.timeout(self.complete_timeout_seconds):
                info = await self._assemble(row)
        except TimeoutError:
            log.warning("completion over its deadline", extra={"upload_id": str(upload_id)})
            raise errors.Unavailable(messages.COMPLETE_TOO_SLOW, code="too_slow") from None
        except storage.STORAGE_ERRORS as exc:
            raise intake.storage_down(exc) from None
        if info is None:
            await self.intake.pool.execute(queries.DELETE_DIRECT, upload_id)
            raise errors.NotFound(messages.UPLOAD_NOT_FOUND)
        uploader = catalog.Uploader(row["user_id"], row["username"], row["city"])
        video = catalog.NewVideo(row["video_id"], uploader, row["title"], row["size_bytes"], info)

        async def claim(conn: asyncpg.Connection) -> None:
            # Of two concurrent completions, one registers the video, the other finds none.
            if await conn.fetchrow(queries.LOCK_DIRECT, upload_id) is None:
                raise errors.NotFound(messages.UPLOAD_NOT_FOUND)
            await conn.execute(queries.DELETE_DIRECT, upload_id)

        await self.intake.accept(video, claim=claim)
        intake.tally("direct", "accepted", "ok", started)
        metrics.BYTES_INGESTED.labels("direct").inc(row["size_bytes"])
        return intake.uploaded(row["video_id"])

    async def _assemble(self, row: Any) -> mp4.Mp4Info | None:
        """Complete the upload and check the file (refused: deleted). None: the upload is gone."""
        key = storage.original_key(row["video_id"])
        parts = await self._stored_parts(row)
        if parts is not None:
            etags = [p.etag for p in _check_parts(row, parts)]
            whole = await self.intake.complete_multipart(
                key, row["s3_upload_id"], etags, row["size_bytes"]
            )
        else:  # completed by an earlier call that failed afterwards?
            whole = await self.intake.stored_size(key) == row["size_bytes"]
        if not whole:
            return None
        try:
            return await self.intake.check_stored(key, row["size_bytes"])
        except errors.Invalid as exc:  # the file is deleted: the upload is over
            await self.intake.pool.execute(queries.DELETE_DIRECT, row["id"])
            intake.tally("direct", "rejected", exc.code)
            raise

    async def _stored_parts(self, row: Any) -> list[StoredPart] | None:
        """None: the multipart upload no longer exists."""
        parts: list[StoredPart] = []
        paginator = self.intake.s3.get_paginator("list_parts")
        try:
            async for page in paginator.paginate(
                Bucket=self.intake.bucket,
                Key=storage.original_key(row["video_id"]),
                UploadId=row["s3_upload_id"],
            ):
                parts += [
                    StoredPart(p["PartNumber"], p["Size"], p["ETag"]) for p in page.get("Parts", [])
                ]
        except ClientError as exc:
            if aws.is_not_found(exc):
                return None
            raise
        return parts

    async def _describe(self, row: Any, parts: list[StoredPart]) -> dict[str, Any]:
        expected = expected_sizes(row["size_bytes"], row["part_bytes"])
        stored = {p.number: p for p in parts}
        described = []
        for number, size in enumerate(expected, start=1):
            part = stored.get(number)
            done = part is not None and part.size == size
            entry: dict[str, Any] = {"part_number": number, "size": size, "uploaded": done}
            if not done:
                # The size is signed into the URL (Content-Length): S3 refuses any other body.
                entry["url"] = await self.intake.s3.generate_presigned_url(
                    "upload_part",
                    Params={
                        "Bucket": self.intake.bucket,
                        "Key": storage.original_key(row["video_id"]),
                        "UploadId": row["s3_upload_id"],
                        "PartNumber": number,
                        "ContentLength": size,
                    },
                    ExpiresIn=self.presign_ttl_seconds,
                )
            described.append(entry)
        expires = row["created_at"] + datetime.timedelta(seconds=self.ttl_seconds)
        return {
            "upload_id": str(row["id"]),
            "video_id": str(row["video_id"]),
            "title": row["title"],
            "size": row["size_bytes"],
            "part_size": row["part_bytes"],
            "expires_at": reads.iso(expires),
            "parts": described,
        }
