"""What every upload path shares: the rules a video must meet, the admission of a new upload,
S3 multipart uploads with their rows, the check of a stored file, the acceptance of a video."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
from botocore.exceptions import ClientError
from starlette.requests import ClientDisconnect
from starlette.types import Receive

from risingstars.kit import aws, errors
from risingstars.upload import catalog, messages, metrics, mp4, queries, storage
from risingstars.upload.outbox import Outbox
from risingstars.upload.s3upload import abort_upload
from risingstars.upload.text import clean_title

log = logging.getLogger("risingstars.upload.intake")

T = TypeVar("T")

# Reasons a file is refused (the `code` of its 400, the `reason` label of its metric).
NOT_MP4 = "not_mp4"
TRUNCATED = "truncated"
MOOV_TOO_LARGE = "moov_too_large"
TOO_LARGE = "too_large"
TOO_SHORT = "too_short"
TOO_LONG = "too_long"
TOO_SMALL_RESOLUTION = "too_small_resolution"
BAD_FORM = "bad_form"
BAD_TITLE = "bad_title"
# Why a new upload is refused before it starts.
DAILY_QUOTA = "daily_quota"
OPEN_UPLOADS = "open_uploads"

QUOTA_RETRY_SECONDS = 3600
OPEN_RETRY_SECONDS = 60
# A streamed upload waits this long for a connection, not the pool's short request wait: a 503
# before its body makes a closed-loop client fail (found at 300 users on a pool of 10), one
# after it makes the player send every byte again.
UPLOAD_DB_WAIT_SECONDS = 30.0


def refused(reason: str, detail: str) -> errors.Invalid:
    return errors.Invalid(detail, code=reason)


def title(raw: str) -> str:
    cleaned = clean_title(raw)
    if cleaned is None:
        raise refused(BAD_TITLE, messages.BAD_TITLE)
    return cleaned


@dataclasses.dataclass(frozen=True)
class UploadPolicy:
    max_bytes: int
    min_duration: float
    max_duration: float
    min_short_side: int
    max_moov_bytes: int
    idle_seconds: float
    deadline_seconds: float
    daily_quota: int
    max_open_per_user: int

    @classmethod
    def from_settings(cls, s: Any) -> UploadPolicy:
        return cls(
            max_bytes=s.max_upload_bytes,
            min_duration=s.min_duration_seconds,
            max_duration=s.max_duration_seconds,
            min_short_side=s.min_short_side_px,
            max_moov_bytes=s.max_moov_bytes,
            idle_seconds=s.upload_idle_seconds,
            deadline_seconds=s.upload_deadline_seconds,
            daily_quota=s.upload_daily_quota,
            max_open_per_user=s.max_open_uploads_per_user,
        )

    def too_large(self) -> errors.Invalid:
        return refused(TOO_LARGE, messages.too_large(self.max_bytes))

    def check_size(self, size: int) -> None:
        if size > self.max_bytes:
            raise self.too_large()

    def check(self, info: mp4.Mp4Info) -> None:
        seconds = info.duration_seconds
        if not self.min_duration <= seconds <= self.max_duration:
            reason = TOO_SHORT if seconds < self.min_duration else TOO_LONG
            detail = messages.bad_duration(seconds, self.min_duration, self.max_duration)
            raise refused(reason, detail)
        if info.short_side < self.min_short_side:
            detail = messages.bad_resolution(info.width, info.height, self.min_short_side)
            raise refused(TOO_SMALL_RESOLUTION, detail)

    def refusal(self, error: mp4.Mp4Error) -> errors.Invalid:
        """The client's answer to an MP4 the scanner or the probe could not accept."""
        if error.code == mp4.TOO_LARGE:
            return self.too_large()
        if error.code == mp4.TRUNCATED:
            return refused(TRUNCATED, messages.TRUNCATED)
        if error.code == mp4.MOOV_TOO_LARGE:
            return refused(MOOV_TOO_LARGE, messages.MOOV_TOO_LARGE)
        return refused(NOT_MP4, messages.NOT_MP4)


def tally(path: str, outcome: str, reason: str, started: float | None = None) -> None:
    """Count a finished upload; `started` (perf_counter) also observes how long it took."""
    metrics.UPLOADS.labels(path, outcome, reason).inc()
    if started is not None:
        metrics.UPLOAD_DURATION.labels(outcome).observe(time.perf_counter() - started)


def outcome(exc: errors.ServiceError) -> str:
    """How a refused upload ended, for the uploads metric."""
    if isinstance(exc, errors.TimedOut):
        return "aborted"
    return "failed" if isinstance(exc, errors.Unavailable) else "rejected"


def uploaded(video_id: Any) -> dict[str, str]:
    return {"message": messages.UPLOADED, "task_id": str(video_id), "video_id": str(video_id)}


async def check_quota(db: Any, user_id: str, limit: int) -> None:
    """429 past `limit` uploads in 24 hours, deleted ones included (each cost an encode)."""
    if await db.fetchval(queries.UPLOADS_LAST_DAY, user_id) >= limit:
        raise errors.TooMany(
            messages.daily_quota(limit), retry_after_seconds=QUOTA_RETRY_SECONDS, code=DAILY_QUOTA
        )


@dataclasses.dataclass(frozen=True)
class OpenCap:
    count_sql: str
    message: Callable[[int], str]


@dataclasses.dataclass
class Intake:
    pool: asyncpg.Pool
    s3: Any
    box: Outbox
    bucket: str
    policy: UploadPolicy

    async def _admit(self, db: Any, user_id: str, cap: OpenCap) -> None:
        limit = self.policy.max_open_per_user
        if await db.fetchval(cap.count_sql, user_id) >= limit:
            raise errors.TooMany(
                cap.message(limit), retry_after_seconds=OPEN_RETRY_SECONDS, code=OPEN_UPLOADS
            )
        await check_quota(db, user_id, self.policy.daily_quota)

    async def open_multipart(
        self,
        user_id: str,
        key: str,
        cap: OpenCap,
        insert: Callable[[asyncpg.Connection, str], Awaitable[T]],
    ) -> T:
        """Start the S3 upload of `key` and record it (`insert`) within the caps, else abort it."""
        await self._admit(self.pool, user_id, cap)  # the usual refusal costs no S3 call
        try:
            created = await self.s3.create_multipart_upload(
                Bucket=self.bucket, Key=key, ContentType="video/mp4"
            )
        except storage.STORAGE_ERRORS as exc:
            raise storage_down(exc) from None
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                await conn.execute(queries.LOCK_UPLOADER, user_id)
                await self._admit(conn, user_id, cap)
                return await insert(conn, created["UploadId"])
        except BaseException:
            await asyncio.shield(abort_upload(self.s3, self.bucket, key, created["UploadId"]))
            raise

    async def complete_multipart(
        self, key: str, upload_id: str, etags: list[str], size: int
    ) -> bool:
        """True once `key` holds the file (completed now, or by an earlier call), else False."""
        try:
            await self.s3.complete_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={
                    "Parts": [{"PartNumber": n, "ETag": tag} for n, tag in enumerate(etags, 1)]
                },
            )
        except ClientError as exc:
            if aws.error_code(exc) != "NoSuchUpload":
                raise
            return await self.stored_size(key) == size
        return True

    async def stored_size(self, key: str) -> int | None:
        try:
            head = await self.s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if aws.is_not_found(exc):
                return None
            raise
        return head["ContentLength"]

    async def check_stored(self, key: str, size: int) -> mp4.Mp4Info:
        """Check the stored file by the rules; a refused one is deleted before the error."""

        async def read(offset: int, length: int) -> bytes:
            return await storage.read_range(self.s3, self.bucket, key, offset, length)

        try:
            self.policy.check_size(size)
            info = await mp4.probe(read, size, max_moov_bytes=self.policy.max_moov_bytes)
            self.policy.check(info)
        except mp4.Mp4Error as exc:
            refusal = self.policy.refusal(exc)
        except errors.Invalid as exc:
            refusal = exc
        else:
            return info
        await storage.delete_keys(self.s3, self.bucket, [key])
        raise refusal

    async def accept(
        self,
        video: catalog.NewVideo,
        *,
        claim: Callable[[asyncpg.Connection], Awaitable[None]] | None = None,
        wait_seconds: float | None = None,
    ) -> None:
        """Record a checked upload with its job in one transaction (`claim(conn)` first takes
        the upload's row), then send the job: after the commit nothing raises."""
        async with self.pool.acquire(timeout=wait_seconds) as conn, conn.transaction():
            if claim is not None:
                await claim(conn)
            delivery = await catalog.record(conn, self.box, video)
        await self.box.deliver_now(delivery)


def storage_down(exc: BaseException) -> errors.Unavailable:
    log.error("S3 unavailable", extra={"error": repr(exc)})
    return errors.Unavailable(messages.STORAGE_DOWN)


async def body_of(receive: Receive) -> AsyncIterator[bytes]:
    """The request body chunk by chunk, like Starlette's request.stream() but holding no chunk
    while the next one arrives: with hundreds of uploads, one idle chunk each is tens of MB."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        body, more = message.get("body", b""), message.get("more_body", False)
        del message
        if body:
            yield body
            del body
        if not more:
            return


@contextlib.asynccontextmanager
async def deadline(seconds: float) -> AsyncIterator[None]:
    """No upload request lasts longer than `seconds`: 408 (code `deadline`) past them."""
    try:
        async with asyncio.timeout(seconds) as scope:
            yield
    except TimeoutError:
        if not scope.expired():
            raise
        raise errors.TimedOut(messages.upload_deadline(seconds), code="deadline") from None


async def paced(chunks: AsyncIterator[bytes], idle_seconds: float) -> AsyncIterator[bytes]:
    """`chunks`, cut off (408 `idle`) when the client is silent: our own waits do not count."""
    received = aiter(chunks)
    while True:
        try:
            async with asyncio.timeout(idle_seconds):
                chunk = await anext(received)
        except StopAsyncIteration:
            return
        except TimeoutError:
            metrics.IDLE_ABORTED.inc()
            raise errors.TimedOut(messages.upload_idle(idle_seconds), code="idle") from None
        yield chunk
        del chunk  # see body_of
