"""Resumable uploads by the tus 1.0 protocol (https://tus.io/protocols/resumable-upload):
core, creation, creation-with-upload, termination and expiration.

Each upload is an S3 multipart upload; what a request leaves of a part is stored as a `tail`
object (named for its request, so a request that lost a race never overwrites the winner's) for
the next request, so any replica can continue any upload. A lease in PostgreSQL lets one request
at a time in (423 otherwise). The offset moves to the end only with the video's record, so a
request that fails late is simply sent again."""

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
from risingstars.kit.periodic import Periodic, running
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
# A request renews its lease on its upload every third of this while it runs, so an upload whose
# request died with its process is free again this soon (expiry leases for as long).
LEASE_SECONDS = 60.0
EXPIRE_BATCH = 100


def tail_prefix(upload_id: uuid.UUID) -> str:
    return f"tus/{upload_id}/"


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
        # The columns named as the fields.
        columns = ("id", "video_id", "s3_upload_id", "title", "metadata", "length", "part_bytes",
                   "offset", "tail_bytes", "tail_name", "expires_at")  # fmt: skip
        return cls(
            **{name: row[name] for name in columns},
            owner=catalog.Uploader(row["user_id"], row["username"], row["city"]),
            etags=tuple(row["etags"]),
            completed=row["completed_at"] is not None,
            lease=lease,
        )  # fmt: skip

    @property
    def key(self) -> str:
        return storage.original_key(self.video_id)

    @property
    def tail(self) -> str:
        assert self.tail_name is not None
        return tail_prefix(self.id) + self.tail_name


OPEN_CAP = intake.OpenCap(tus_queries.COUNT_OPEN, messages.tus_open_uploads)


@dataclasses.dataclass
class TusUploads:
    intake: intake.Intake
    buffers: PartStore
    slots: UserSlots  # the streamed path's too: the per-user limit counts both
    ttl_seconds: int
    parts_in_flight: int = 3

    async def create(
        self, owner: catalog.Uploader, length: int, metadata_header: str | None
    ) -> Upload:
        if length > self.intake.policy.max_bytes:
            raise errors.TooLarge(messages.too_large(self.intake.policy.max_bytes))
        metadata = parse_metadata(metadata_header)
        raw_title = metadata.get("title") or metadata.get("filename")
        if not raw_title:
            raise errors.Invalid(messages.TUS_MISSING_TITLE)
        title = intake.title(raw_title)
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
        """The upload, held by this request alone until the block ends (else 423 at once)."""
        token, pool = uuid.uuid4(), self.intake.pool
        row = await pool.fetchrow(tus_queries.LEASE, upload_id, token, LEASE_SECONDS)
        if row is None:
            await self.get(upload_id, user_id)  # absent or expired: say so
            raise errors.Locked(messages.TUS_BUSY)

        async def renew() -> None:
            await pool.execute(tus_queries.RENEW, upload_id, token, LEASE_SECONDS)

        renewal = Periodic("tus_lease", renew, LEASE_SECONDS / 3, first_delay=LEASE_SECONDS / 3)
        try:
            async with running(renewal):
                yield _visible(row, user_id, lease=token)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(pool.execute(tus_queries.RELEASE, upload_id, token))

    async def append(self, upload: Upload, offset: int, body: AsyncIterator[bytes]) -> Upload:
        """Store one PATCH's bytes on a leased upload; what arrived is kept whatever ends it."""
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
                # An earlier request completed it in S3 but failed to record it: record it now.
                return await self._record(upload, list(upload.etags))
            raise errors.Unavailable(messages.STORAGE_DOWN) from exc
        except BaseException:
            # Whatever ended the request, what arrived is kept: the client resumes there.
            await asyncio.shield(request.keep_what_arrived(quietly=True))
            raise
        finally:
            await asyncio.shield(request.writer.release())

    async def _assembled(self, upload: Upload) -> bool:
        with contextlib.suppress(*storage.STORAGE_ERRORS):
            return await self.intake.stored_size(upload.key) == upload.length
        return False

    async def _record(self, upload: Upload, etags: list[str]) -> Upload:
        """Check the whole file and record it as the upload completes (or remove it if bad)."""
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
        if upload.completed:
            raise errors.Conflict(messages.TUS_COMPLETE_DELETE)
        await self._remove(upload)

    async def _remove(self, upload: Upload) -> None:
        await _remove_objects(self.intake.s3, self.intake.bucket, upload)
        await self.intake.pool.execute(tus_queries.DELETE, upload.id)

    async def expire(self) -> int:
        return await expire(self.intake.pool, self.intake.s3, self.intake.bucket)


async def expire(pool: asyncpg.Pool, s3: Any, bucket: str) -> int:
    """Remove expired uploads and their objects, each leased first (no request appends)."""
    token = uuid.uuid4()
    rows = await pool.fetch(tus_queries.LEASE_EXPIRED, EXPIRE_BATCH, token, LEASE_SECONDS)
    for row in rows:
        upload = Upload.from_row(row, lease=token)
        if upload.completed:
            await _delete_tails(s3, bucket, upload.id)  # a stale request's, if any
        else:
            await _remove_objects(s3, bucket, upload)
        await pool.execute(tus_queries.DELETE_LEASED, upload.id, token)
    return len(rows)


async def _remove_objects(s3: Any, bucket: str, upload: Upload) -> None:
    # The original too: a failed completion may have assembled it (no video refers to it).
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


class _Request:
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
        """Wait for room for a part (admission), then put the previous request's tail in it."""
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
        """Store the partial part as the tail, record the offset (quietly: after a failure)."""
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
                Key=tail_prefix(upload.id) + tail_name,
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
                    await storage.delete_keys(s3, bucket, [tail_prefix(upload.id) + tail_name])
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
        self.saved = True  # whatever happens now, the client sends the last request again
        upload = self.upload
        etags = await self.writer.send_rest()
        if not await self.uploads.intake.complete_multipart(
            upload.key, upload.s3_upload_id, etags, upload.length
        ):
            raise errors.Conflict(messages.TUS_RACE)  # removed meanwhile (its lease ran out)
        return await self.uploads._record(upload, etags)
