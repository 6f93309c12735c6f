"""Direct-to-S3 uploads (extension): the client PUTs the parts of an S3 multipart upload to
presigned URLs itself, can ask which parts are stored to resume after a dropped connection, and
asks us to complete: the parts are checked, the upload completed, the MP4 header validated with
ranged reads, and the video registered like a streamed one.

Completion does its storage work (listing parts, completing, probing) with no database
connection held, within an overall deadline; the upload's row is locked only to commit, so
slow or hostile files cannot tie up the pool (finding 10.1).
"""

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

from risingstars.kit import errors
from risingstars.upload import catalog, ingest, messages, metrics, mp4, queries, reads, storage
from risingstars.upload.outbox import Outbox
from risingstars.upload.s3upload import abort_upload

log = logging.getLogger("risingstars.upload.direct")

RETRY_OPEN_SECONDS = 60


@dataclasses.dataclass(frozen=True)
class StoredPart:
    number: int
    size: int
    etag: str


@dataclasses.dataclass(frozen=True)
class Refusal:
    """The stored file is not an acceptable video: `reason` for metrics, `detail` for the
    client."""

    reason: str
    detail: str


def expected_sizes(size: int, part_bytes: int) -> list[int]:
    count = max(1, math.ceil(size / part_bytes))
    return [part_bytes] * (count - 1) + [size - part_bytes * (count - 1)]


def _storage_down(exc: Exception) -> errors.Unavailable:
    log.error("S3 unavailable", extra={"error": repr(exc)})
    return errors.Unavailable(messages.STORAGE_DOWN)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


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
    pool: asyncpg.Pool
    s3: Any
    box: Outbox
    bucket: str
    limits: ingest.Limits
    part_bytes: int
    presign_ttl_seconds: int
    ttl_seconds: int
    max_open_per_user: int
    daily_quota: int
    complete_timeout_seconds: float

    async def create(self, user: catalog.Uploader, title: str, size: int) -> dict[str, Any]:
        if size < 1:
            raise errors.Invalid(messages.BAD_SIZE)
        if size > self.limits.max_bytes:
            raise errors.Invalid(messages.too_large(self.limits.max_bytes))
        if await self.pool.fetchval(queries.OPEN_DIRECT, user.user_id) >= self.max_open_per_user:
            raise errors.TooMany(
                messages.open_uploads(self.max_open_per_user),
                retry_after_seconds=RETRY_OPEN_SECONDS,
            )
        await catalog.check_quota(self.pool, user.user_id, self.daily_quota)
        video_id = uuid.uuid4()
        upload_id = uuid.uuid4()
        key = storage.original_key(video_id)
        try:
            created = await self.s3.create_multipart_upload(
                Bucket=self.bucket, Key=key, ContentType="video/mp4"
            )
        except storage.STORAGE_ERRORS as exc:
            raise _storage_down(exc) from None
        try:
            created_at = await self.pool.fetchval(
                queries.INSERT_DIRECT,
                upload_id,
                video_id,
                created["UploadId"],
                user.user_id,
                user.username,
                user.city,
                title,
                size,
                self.part_bytes,
            )
        except BaseException:
            await abort_upload(self.s3, self.bucket, key, created["UploadId"])
            raise
        row = {
            "id": upload_id,
            "video_id": video_id,
            "s3_upload_id": created["UploadId"],
            "title": title,
            "size_bytes": size,
            "part_bytes": self.part_bytes,
            "created_at": created_at,
        }
        return await self._describe(row, [])

    async def status(self, user_id: str, upload_id: uuid.UUID) -> dict[str, Any]:
        row = _owned(await self.pool.fetchrow(queries.GET_DIRECT, upload_id), user_id)
        try:
            parts = await self._stored_parts(row)
        except storage.STORAGE_ERRORS as exc:
            raise _storage_down(exc) from None
        if parts is None:
            raise errors.NotFound(messages.UPLOAD_NOT_FOUND)
        return await self._describe(row, parts)

    async def cancel(self, user_id: str, upload_id: uuid.UUID) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            row = _owned(await conn.fetchrow(queries.LOCK_DIRECT, upload_id), user_id)
            key = storage.original_key(row["video_id"])
            if not await abort_upload(self.s3, self.bucket, key, row["s3_upload_id"]):
                raise errors.Unavailable(messages.STORAGE_DOWN)
            await conn.execute(queries.DELETE_DIRECT, upload_id)

    async def complete(self, user_id: str, upload_id: uuid.UUID) -> dict[str, Any]:
        started = time.perf_counter()
        row = _owned(await self.pool.fetchrow(queries.GET_DIRECT, upload_id), user_id)
        video_id = row["video_id"]
        try:
            async with asyncio.timeout(self.complete_timeout_seconds):
                info = await self._assemble(row)
        except TimeoutError:
            log.warning("completion over its deadline", extra={"upload_id": str(upload_id)})
            raise errors.Unavailable(messages.COMPLETE_TOO_SLOW, code="too_slow") from None
        except storage.STORAGE_ERRORS as exc:
            raise _storage_down(exc) from None
        uploader = catalog.Uploader(row["user_id"], row["username"], row["city"])
        # Locked only to commit: of two concurrent completions, one registers the video and the
        # other finds the upload gone.
        delivery = None
        async with self.pool.acquire() as conn, conn.transaction():
            if await conn.fetchrow(queries.LOCK_DIRECT, upload_id) is None:
                raise errors.NotFound(messages.UPLOAD_NOT_FOUND)
            await conn.execute(queries.DELETE_DIRECT, upload_id)
            if isinstance(info, mp4.Mp4Info):
                video = catalog.NewVideo(video_id, uploader, row["title"], row["size_bytes"], info)
                delivery = await catalog.record(conn, self.box, video)
        if info is None:
            raise errors.NotFound(messages.UPLOAD_NOT_FOUND)
        if isinstance(info, Refusal):
            metrics.UPLOADS.labels("direct", "rejected", info.reason).inc()
            raise errors.Invalid(info.detail, code=info.reason)
        assert delivery is not None
        await self.box.deliver_now(delivery)
        metrics.UPLOADS.labels("direct", "accepted", "ok").inc()
        metrics.BYTES_INGESTED.labels("direct").inc(row["size_bytes"])
        metrics.UPLOAD_DURATION.labels("accepted").observe(time.perf_counter() - started)
        return {"message": messages.UPLOADED, "task_id": str(video_id), "video_id": str(video_id)}

    async def _assemble(self, row: Any) -> mp4.Mp4Info | Refusal | None:
        """Complete the multipart upload (or find it completed by an earlier call) and check
        the stored file; a refused file is deleted. None: the upload is gone."""
        key = storage.original_key(row["video_id"])
        parts = await self._stored_parts(row)
        if parts is not None:
            ordered = _check_parts(row, parts)
            try:
                await self.s3.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=row["s3_upload_id"],
                    MultipartUpload={
                        "Parts": [{"PartNumber": p.number, "ETag": p.etag} for p in ordered]
                    },
                )
            except ClientError as exc:
                if _code(exc) != "NoSuchUpload":
                    raise
                parts = None  # completed meanwhile by a concurrent call
        if parts is None and await self._stored_size(key) != row["size_bytes"]:
            # Neither in progress nor completed by an earlier call that failed afterwards.
            return None
        outcome = await self._validate(key, row["size_bytes"])
        if isinstance(outcome, Refusal):
            await storage.delete_keys(self.s3, self.bucket, [key])
        return outcome

    async def _validate(self, key: str, size: int) -> mp4.Mp4Info | Refusal:
        """Check the stored file's MP4 header with a few ranged reads."""

        async def read(offset: int, length: int) -> bytes:
            return await storage.read_range(self.s3, self.bucket, key, offset, length)

        if size > self.limits.max_bytes:
            return Refusal("too_large", messages.too_large(self.limits.max_bytes))
        try:
            info = await mp4.probe(read, size, max_moov_bytes=self.limits.max_moov_bytes)
            ingest.check_info(info, self.limits)
        except mp4.Mp4Error as exc:
            refused = ingest.rejection(exc, self.limits)
            return Refusal(refused.reason, refused.detail)
        except ingest.BadUpload as exc:
            return Refusal(exc.reason, exc.detail)
        return info

    async def _stored_parts(self, row: Any) -> list[StoredPart] | None:
        """The parts S3 holds, or None if the multipart upload no longer exists."""
        parts: list[StoredPart] = []
        paginator = self.s3.get_paginator("list_parts")
        try:
            async for page in paginator.paginate(
                Bucket=self.bucket,
                Key=storage.original_key(row["video_id"]),
                UploadId=row["s3_upload_id"],
            ):
                parts += [
                    StoredPart(p["PartNumber"], p["Size"], p["ETag"]) for p in page.get("Parts", [])
                ]
        except ClientError as exc:
            if _code(exc) in {"NoSuchUpload", "404"}:
                return None
            raise
        return parts

    async def _stored_size(self, key: str) -> int | None:
        try:
            head = await self.s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in {"404", "NoSuchKey", "NotFound"}:
                return None
            raise
        return head["ContentLength"]

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
                entry["url"] = await self.s3.generate_presigned_url(
                    "upload_part",
                    Params={
                        "Bucket": self.bucket,
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
