"""Resumable uploads by the tus 1.0 protocol (https://tus.io/protocols/resumable-upload):
core, creation, creation-with-upload, termination and expiration.

Each upload is an S3 multipart upload of the video's original key, whole parts sent as they
fill; what a request leaves of an incomplete part is stored as a small `tail` object (named for
the request that wrote it, so a request that lost a race never overwrites the winner's) and read
back by the next request: any replica can continue any upload. PostgreSQL holds the offset, the
parts' ETags and the tail's name, and a lease that lets one request at a time in (423 otherwise).
A PATCH obeys the streamed upload's limits (per-user count, admission, idle timeout, deadline).

The last byte completes the S3 upload; the file is checked as a streamed one's, and a valid video
recorded with its job in the transaction that marks the upload done. Until that commit the
offset stays where the request started, so a request that fails late is simply sent again.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import dataclasses
import datetime
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from risingstars.kit import errors
from risingstars.upload import catalog, intake, messages, metrics, storage, tus_queries
from risingstars.upload.capacity import UserSlots
from risingstars.upload.s3upload import MultipartWriter, StorageError, abort_upload
from risingstars.upload.spill import PartStore

log = logging.getLogger("risingstars.upload.tus")

VERSION = "1.0.0"
EXTENSIONS = "creation,creation-with-upload,termination,expiration"
MAX_METADATA_BYTES = 4096
# The tail is copied from S3 into the request's part in slices of this size.
TAIL_READ_BYTES = 64 * 1024
# A lease outlives its request's deadline by this much (the request's own cleanup).
LEASE_MARGIN_SECONDS = 60


def tail_prefix(upload_id: uuid.UUID) -> str:
    return f"tus/{upload_id}/"


def tail_key(upload_id: uuid.UUID, name: str) -> str:
    return tail_prefix(upload_id) + name


def parse_metadata(header: str | None) -> dict[str, str]:
    """`key base64value,key2 base64value2` (values optional), as the protocol defines."""
    if not header:
        return {}
    if len(header) > MAX_METADATA_BYTES:
        raise errors.Invalid(messages.TUS_METADATA_TOO_LONG)
    pairs: dict[str, str] = {}
    for item in header.split(","):
        key, _, value = item.strip().partition(" ")
        if not key or key in pairs or " " in value.strip():
            raise errors.Invalid(messages.TUS_METADATA_INVALID)
        try:
            pairs[key] = base64.b64decode(value.strip(), validate=True).decode() if value else ""
        except (binascii.Error, UnicodeDecodeError):
            raise errors.Invalid(messages.tus_metadata_not_base64(key)) from None
    return pairs


@dataclasses.dataclass(frozen=True)
class Upload:
    id: uuid.UUID
    video_id: uuid.UUID
    s3_upload_id: str
    owner: catalog.Uploader
    title: str
    metadata: str
    length: int
    part_bytes: int
    offset: int
    etags: tuple[str, ...]
    tail_bytes: int
    tail_name: str | None
    completed: bool
    expires_at: datetime.datetime
    # The token of the lease this snapshot was taken under (None: read without one).
    lease: uuid.UUID | None = None

    @classmethod
    def from_row(cls, row: asyncpg.Record, lease: uuid.UUID | None = None) -> Upload:
        return cls(
            id=row["id"],
            video_id=row["video_id"],
            s3_upload_id=row["s3_upload_id"],
            owner=catalog.Uploader(row["user_id"], row["username"], row["city"]),
            title=row["title"],
            metadata=row["metadata"],
            length=row["length"],
            part_bytes=row["part_bytes"],
            offset=row["offset"],
            etags=tuple(row["etags"]),
            tail_bytes=row["tail_bytes"],
            tail_name=row["tail_name"],
            completed=row["completed_at"] is not None,
            expires_at=row["expires_at"],
            lease=lease,
        )

    @property
    def key(self) -> str:
        return storage.original_key(self.video_id)

    @property
    def tail(self) -> str:
        assert self.tail_name is not None
        return tail_key(self.id, self.tail_name)


# How tus counts a user's unfinished uploads (intake's open-upload cap).
OPEN_CAP = intake.OpenCap(tus_queries.COUNT_OPEN, messages.tus_open_uploads)


@dataclasses.dataclass
class TusUploads:
    intake: intake.Intake
    buffers: PartStore
    # Running uploads per user, shared with the streamed path.
    slots: UserSlots
    ttl_seconds: int
    parts_in_flight: int = 3

    async def create(
        self, owner: catalog.Uploader, length: int, metadata_header: str | None
    ) -> Upload:
        if length > self.intake.policy.max_bytes:
            raise errors.TooLarge(messages.too_large(self.intake.policy.max_bytes))
        title = _title(parse_metadata(metadata_header))
        upload_id, video_id = uuid.uuid4(), uuid.uuid4()

        async def insert(conn: asyncpg.Connection, s3_upload_id: str) -> asyncpg.Record:
            return await conn.fetchrow(
                tus_queries.INSERT, upload_id, video_id, s3_upload_id, owner.user_id,
                owner.username, owner.city, title, metadata_header or "", length,
                self.buffers.part_bytes, float(self.ttl_seconds),
            )  # fmt: skip

        key = storage.original_key(video_id)
        return Upload.from_row(
            await self.intake.open_multipart(owner.user_id, key, OPEN_CAP, insert)
        )

    async def get(self, upload_id: uuid.UUID, user_id: str) -> Upload:
        return _visible(await self.intake.pool.fetchrow(tus_queries.GET, upload_id), user_id)

    @contextlib.asynccontextmanager
    async def leased(self, upload_id: uuid.UUID, user_id: str) -> AsyncIterator[Upload]:
        """The upload as it stands, held by this request alone until the block ends; Locked
        (423) at once if another request holds it."""
        token = uuid.uuid4()
        pool, deadline = self.intake.pool, self.intake.policy.deadline_seconds
        seconds = deadline + self.buffers.admission_wait + LEASE_MARGIN_SECONDS
        row = await pool.fetchrow(tus_queries.LEASE, upload_id, token, seconds)
        if row is None:
            await self.get(upload_id, user_id)  # absent or expired: say so
            raise errors.Locked(messages.TUS_BUSY)
        try:
            yield _visible(row, user_id, lease=token)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(pool.execute(tus_queries.RELEASE, upload_id, token))

    async def append(self, upload: Upload, offset: int, body: AsyncIterator[bytes]) -> Upload:
        """Store the bytes of one PATCH request on a leased upload; returns the upload as it
        now stands. If the client goes away or goes quiet (errors.TimedOut) mid-request, what
        arrived is kept, then the error is re-raised. errors.TooMany: the user has as many
        uploads running as allowed; capacity.busy's 503: no room came for a part within the
        admission wait; in both cases nothing was read."""
        assert upload.lease is not None, "append needs the upload's lease"
        with self.slots.hold(upload.owner.user_id):
            return await self._append(upload, offset, body)

    async def _append(self, upload: Upload, offset: int, body: AsyncIterator[bytes]) -> Upload:
        if upload.completed:
            if offset == upload.length:
                return upload
            raise errors.Conflict(messages.TUS_COMPLETE)
        if offset != upload.offset:
            raise errors.Conflict(messages.tus_offset(upload.offset), code="offset")
        request = _Request(self, upload)
        try:
            await request.start()
            async with intake.deadline(self.intake.policy.deadline_seconds):
                async for chunk in intake.paced(body, self.intake.policy.idle_seconds):
                    await request.write(chunk)
                    del chunk  # see intake.body_of
            if request.received < upload.length:
                return await request.keep_what_arrived()
            return await request.finish()
        except (errors.Invalid, errors.Conflict):
            raise
        except StorageError as exc:
            if await self._assembled(upload):
                # An earlier request completed it in S3 and failed before recording it (S3
                # refuses parts of a completed upload): the client sent the same last request
                # again; record it now.
                return await self._record(upload, list(upload.etags))
            raise errors.Unavailable(messages.STORAGE_DOWN) from exc
        except BaseException:
            # A dropped connection, silence or the deadline keeps what arrived: the client
            # resumes there.
            await asyncio.shield(request.keep_what_arrived(quietly=True))
            raise
        finally:
            await asyncio.shield(request.writer.release())

    async def _assembled(self, upload: Upload) -> bool:
        with contextlib.suppress(*storage.STORAGE_ERRORS):
            return await self.intake.stored_size(upload.key) == upload.length
        return False

    async def _record(self, upload: Upload, etags: list[str]) -> Upload:
        """The file is whole in S3: check it, and record the video with its job in the
        transaction that marks the upload complete (or remove everything if it is bad)."""
        try:
            info = await self.intake.check_stored(upload.key, upload.length)
        except errors.Invalid:
            await self._remove(upload)
            raise

        async def claim(conn: asyncpg.Connection) -> None:
            done = await conn.execute(
                tus_queries.COMPLETE, upload.id, upload.offset, etags, upload.lease
            )
            if done != "UPDATE 1":
                raise errors.Conflict(messages.TUS_RACE)

        video = catalog.NewVideo(upload.video_id, upload.owner, upload.title, upload.length, info)
        await self.intake.accept(video, claim=claim)
        with contextlib.suppress(*storage.STORAGE_ERRORS):
            await _delete_tails(self.intake.s3, self.intake.bucket, upload.id)
        return dataclasses.replace(
            upload, offset=upload.length, etags=tuple(etags), tail_bytes=0, tail_name=None,
            completed=True,
        )  # fmt: skip

    async def terminate(self, upload: Upload) -> None:
        """Remove a leased upload and every object it made (its lease keeps a PATCH out)."""
        if upload.completed:
            raise errors.Conflict(messages.TUS_COMPLETE_DELETE)
        await self._remove(upload)

    async def _remove(self, upload: Upload) -> None:
        await _remove_objects(self.intake.s3, self.intake.bucket, upload)
        await self.intake.pool.execute(tus_queries.DELETE, upload.id)

    async def expire(self, batch: int = 100) -> int:
        return await expire(self.intake.pool, self.intake.s3, self.intake.bucket, batch)


async def expire(pool: asyncpg.Pool, s3: Any, bucket: str, batch: int = 100) -> int:
    """Forget expired uploads: abort unfinished ones and remove every object they made. Each
    is leased first (no request appends meanwhile); S3 is called outside any transaction."""
    token = uuid.uuid4()
    removed = 0
    for row in await pool.fetch(tus_queries.LEASE_EXPIRED, batch, token, LEASE_MARGIN_SECONDS):
        upload = Upload.from_row(row, lease=token)
        if upload.completed:
            await _delete_tails(s3, bucket, upload.id)  # a stale request's, if any
        else:
            await _remove_objects(s3, bucket, upload)
        await pool.execute(tus_queries.DELETE_LEASED, upload.id, token)
        removed += 1
    return removed


async def _remove_objects(s3: Any, bucket: str, upload: Upload) -> None:
    """An unfinished upload's objects: its multipart upload, the original a failed completion
    may have assembled (no video refers to it), and its tails."""
    await abort_upload(s3, bucket, upload.key, upload.s3_upload_id)
    await storage.delete_keys(s3, bucket, [upload.key])
    await _delete_tails(s3, bucket, upload.id)


async def _delete_tails(s3: Any, bucket: str, upload_id: uuid.UUID) -> None:
    listed = await s3.list_objects_v2(Bucket=bucket, Prefix=tail_prefix(upload_id))
    keys = [item["Key"] for item in listed.get("Contents", [])]
    if keys:
        await storage.delete_keys(s3, bucket, keys)


def _visible(row: asyncpg.Record | None, user_id: str, lease: uuid.UUID | None = None) -> Upload:
    # Someone else's upload is as absent as an unknown one.
    if row is None or row["user_id"] != user_id:
        raise errors.NotFound(messages.UPLOAD_NOT_FOUND)
    upload = Upload.from_row(row, lease)
    if upload.expires_at < datetime.datetime.now(datetime.UTC):
        raise errors.Gone(messages.TUS_EXPIRED)
    return upload


def _title(metadata: dict[str, str]) -> str:
    raw = metadata.get("title") or metadata.get("filename")
    if not raw:
        raise errors.Invalid(messages.TUS_MISSING_TITLE)
    return intake.title(raw)


class _Request:
    """One PATCH request's bytes: the tail a previous request left, then the body, through the
    streamed upload's part writer into the upload's S3 multipart upload."""

    def __init__(self, uploads: TusUploads, upload: Upload) -> None:
        self.uploads = uploads
        self.upload = upload
        self.received = upload.offset
        self.writer = MultipartWriter(
            uploads.intake.s3,
            uploads.intake.bucket,
            upload.key,
            uploads.buffers,
            parts_in_flight=uploads.parts_in_flight,
            upload_id=upload.s3_upload_id,
            etags=upload.etags,
        )
        self.started = False
        self.saved = False

    async def start(self) -> None:
        """Wait for room for a part (the part store's admission), then put the tail a previous
        request left into it."""
        await self.writer.reserve()
        self.started = True
        if not self.upload.tail_bytes:
            return
        s3, bucket = self.uploads.intake.s3, self.uploads.intake.bucket
        response = await s3.get_object(Bucket=bucket, Key=self.upload.tail)
        read = 0
        async with response["Body"] as body:
            async for chunk in body.iter_chunks(TAIL_READ_BYTES):
                read += len(chunk)
                await self.writer.write(chunk)
        if read != self.upload.tail_bytes:
            raise errors.Unavailable(messages.TUS_TAIL_UNREADABLE)

    async def write(self, chunk: bytes) -> None:
        if self.received + len(chunk) > self.upload.length:
            raise errors.Invalid(messages.TUS_PAST_LENGTH)
        if self.received == 0 and len(chunk) >= 8 and chunk[4:8] != b"ftyp":
            # The first bytes must open an MP4 (`ftyp`): refuse anything else at once.
            raise intake.refused(intake.NOT_MP4, messages.NOT_MP4)
        await self.writer.write(chunk)
        self.received += len(chunk)
        metrics.BYTES_INGESTED.labels("tus").inc(len(chunk))

    async def keep_what_arrived(self, *, quietly: bool = False) -> Upload:
        """Store the incomplete part as the tail object and record the new offset (quietly:
        after a failure, when nothing may be kept if the parts did not all reach S3)."""
        if self.saved or not self.started or self.received == self.upload.offset:
            return self.upload
        self.saved = True
        try:
            return await self._keep()
        except Exception:
            if not quietly:
                raise
            log.warning("bytes of a broken tus request not kept", exc_info=True)
            return self.upload

    async def _keep(self) -> Upload:
        s3, bucket, upload = self.uploads.intake.s3, self.uploads.intake.bucket, self.upload
        etags = await self.writer.drain()
        part = self.writer.partial
        tail_bytes = part.size if part is not None else 0
        tail_name = f"{self.received}-{upload.lease}.tail" if tail_bytes else None
        if tail_name is not None:
            assert part is not None
            body = part.seal()
            await s3.put_object(
                Bucket=bucket,
                Key=tail_key(upload.id, tail_name),
                Body=body,
                ContentLength=len(body),
                **body.checksum,
            )
        done = await self.uploads.intake.pool.execute(
            tus_queries.ADVANCE, upload.id, upload.offset, self.received, etags, tail_bytes,
            upload.lease, tail_name,
        )  # fmt: skip
        if done != "UPDATE 1":
            # Lost a race (its lease ran out): what it wrote is nobody's.
            if tail_name is not None:
                with contextlib.suppress(*storage.STORAGE_ERRORS):
                    await storage.delete_keys(s3, bucket, [tail_key(upload.id, tail_name)])
            raise errors.Conflict(messages.TUS_RACE)
        if upload.tail_bytes:
            with contextlib.suppress(*storage.STORAGE_ERRORS):
                await storage.delete_keys(s3, bucket, [upload.tail])
        self.upload = dataclasses.replace(
            upload, offset=self.received, etags=tuple(etags), tail_bytes=tail_bytes,
            tail_name=tail_name,
        )  # fmt: skip
        return self.upload

    async def finish(self) -> Upload:
        """The last byte arrived: send the last part, complete the S3 upload, then check and
        record it. The recorded offset moves only with that record."""
        self.saved = True  # whatever happens now, the client sends the last request again
        upload = self.upload
        etags = await self.writer.send_rest()
        if not await self.uploads.intake.complete_multipart(
            upload.key, upload.s3_upload_id, etags, upload.length
        ):
            raise errors.Conflict(messages.TUS_RACE)  # removed meanwhile (its lease ran out)
        return await self.uploads._record(upload, etags)
