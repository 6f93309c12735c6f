"""Resumable uploads by the tus 1.0 protocol (https://tus.io/protocols/resumable-upload):
core, creation, creation-with-upload, termination and expiration.

Where the bytes go: each upload is an S3 multipart upload of the video's original key. Whole
parts are sent to S3 as they fill; what a request leaves of an incomplete part is stored as a
small `tail` object and read back by the next request, so nothing stays in a process between
requests and any replica can continue an upload that another started. PostgreSQL holds the
offset and the parts' ETags; progress is recorded by compare-and-set on the offset, so two
requests racing on one upload cannot both append. Within a request, the part being filled comes
from the process's PartStore as a streamed upload's does (memory, then spill files; 503 at once
when neither has room), and a request quiet for UPLOAD_IDLE_SECONDS ends (408), keeping what
arrived.

When the last byte arrives the multipart upload is completed and the file checked exactly as a
streamed upload's (the MP4 header by ranged reads, the size, duration and resolution rules); a
valid video is recorded with its processing job in the transaction that marks the upload done.
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
from botocore.exceptions import ClientError

from risingstars.kit import errors
from risingstars.upload import catalog, intake, messages, metrics, mp4, storage, tus_queries
from risingstars.upload.outbox import Outbox
from risingstars.upload.s3upload import PartBody, abort_upload
from risingstars.upload.spill import Part, PartStore
from risingstars.upload.text import clean_title

log = logging.getLogger("risingstars.upload.tus")

VERSION = "1.0.0"
EXTENSIONS = "creation,creation-with-upload,termination,expiration"
MAX_METADATA_BYTES = 4096
# The tail is copied from S3 into the request's part in slices of this size.
TAIL_READ_BYTES = 64 * 1024


class TusError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def tail_key(upload_id: uuid.UUID) -> str:
    return f"tus/{upload_id}.tail"


def parse_metadata(header: str | None) -> dict[str, str]:
    """`key base64value,key2 base64value2` (values optional), as the protocol defines."""
    if not header:
        return {}
    if len(header) > MAX_METADATA_BYTES:
        raise TusError(400, "Upload-Metadata es demasiado largo")
    pairs: dict[str, str] = {}
    for item in header.split(","):
        key, _, value = item.strip().partition(" ")
        if not key or key in pairs or " " in value.strip():
            raise TusError(400, "Upload-Metadata inválido")
        try:
            pairs[key] = base64.b64decode(value.strip(), validate=True).decode() if value else ""
        except (binascii.Error, UnicodeDecodeError):
            raise TusError(400, f"Upload-Metadata inválido: {key} no está en base64") from None
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
    completed: bool
    expires_at: datetime.datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Upload:
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
            completed=row["completed_at"] is not None,
            expires_at=row["expires_at"],
        )

    @property
    def key(self) -> str:
        return storage.original_key(self.video_id)


@dataclasses.dataclass
class TusUploads:
    pool: asyncpg.Pool
    s3: Any
    box: Outbox
    bucket: str
    buffers: PartStore
    limits: intake.UploadPolicy
    ttl_seconds: int
    max_open_per_user: int
    daily_quota: int
    idle_seconds: float

    async def create(
        self, owner: catalog.Uploader, length: int, metadata_header: str | None
    ) -> Upload:
        if length > self.limits.max_bytes:
            raise TusError(413, messages.too_large(self.limits.max_bytes))
        metadata = parse_metadata(metadata_header)
        title = _title(metadata)
        await intake.check_quota(self.pool, owner.user_id, self.daily_quota)
        open_now = await self.pool.fetchval(tus_queries.COUNT_OPEN, owner.user_id)
        if open_now >= self.max_open_per_user:
            raise TusError(
                429,
                f"Tiene {open_now} subidas sin terminar: termine o cancele alguna antes de "
                "empezar otra",
            )
        upload_id, video_id = uuid.uuid4(), uuid.uuid4()
        key = storage.original_key(video_id)
        created = await self.s3.create_multipart_upload(
            Bucket=self.bucket, Key=key, ContentType="video/mp4"
        )
        try:
            row = await self.pool.fetchrow(
                tus_queries.INSERT,
                upload_id,
                video_id,
                created["UploadId"],
                owner.user_id,
                owner.username,
                owner.city,
                title,
                metadata_header or "",
                length,
                self.buffers.part_bytes,
                float(self.ttl_seconds),
            )
        except BaseException:
            await abort_upload(self.s3, self.bucket, key, created["UploadId"])
            raise
        return Upload.from_row(row)

    async def get(self, upload_id: uuid.UUID, user_id: str) -> Upload:
        row = await self.pool.fetchrow(tus_queries.GET, upload_id)
        # Someone else's upload is as absent as an unknown one.
        if row is None or row["user_id"] != user_id:
            raise TusError(404, "La subida no existe")
        upload = Upload.from_row(row)
        if upload.expires_at < datetime.datetime.now(datetime.UTC):
            raise TusError(410, "La subida expiró; empiece una nueva")
        return upload

    async def append(self, upload: Upload, offset: int, body: AsyncIterator[bytes]) -> Upload:
        """Store the bytes of one PATCH request; returns the upload as it now stands. If the
        client goes away or goes quiet (capacity.TimedOut) mid-request, what arrived is kept,
        then the error is re-raised. capacity.Busy: no room for a part, nothing read."""
        if upload.completed:
            if offset == upload.length:
                return upload
            raise TusError(409, "La subida ya está completa")
        if offset != upload.offset:
            raise TusError(409, f"Upload-Offset debe ser {upload.offset}")
        writer = _Appender(self, upload)
        try:
            await writer.start()
            try:
                async for chunk in intake.paced(body, self.idle_seconds):
                    await writer.write(chunk)
                    del chunk  # see intake.body_of
            except TusError:
                raise
            except BaseException:
                # A dropped connection (or a fault) keeps what arrived: the client resumes there.
                await writer.keep_what_arrived()
                raise
            if writer.received < upload.length:
                return await writer.keep_what_arrived()
            return await self._finish(writer)
        finally:
            writer.release()

    async def _finish(self, writer: _Appender) -> Upload:
        # The last part is stored and recorded (compare-and-set) before S3 completes anything:
        # a request that lost a race learns it here and changes nothing.
        etags = await writer.flush_last_part()
        upload = writer.upload
        try:
            await self.s3.complete_multipart_upload(
                Bucket=self.bucket,
                Key=upload.key,
                UploadId=upload.s3_upload_id,
                MultipartUpload={
                    "Parts": [{"PartNumber": n, "ETag": tag} for n, tag in enumerate(etags, 1)]
                },
            )
        except ClientError as exc:
            # Completed by an earlier request that failed afterwards: the object is there.
            if exc.response.get("Error", {}).get("Code") != "NoSuchUpload":
                raise
            head = await self.s3.head_object(Bucket=self.bucket, Key=upload.key)
            if head["ContentLength"] != upload.length:
                raise
        try:
            info = await self._check(upload)
        except errors.Invalid as rejected:
            await storage.delete_keys(self.s3, self.bucket, [upload.key, tail_key(upload.id)])
            await self.pool.execute(tus_queries.DELETE, upload.id)
            raise TusError(400, rejected.detail) from None
        async with self.pool.acquire() as conn, conn.transaction():
            done = await conn.execute(tus_queries.COMPLETE, upload.id, upload.offset, list(etags))
            if done != "UPDATE 1":
                raise TusError(409, "Otra petición modificó esta subida al mismo tiempo")
            video = catalog.NewVideo(
                upload.video_id, upload.owner, upload.title, upload.length, info
            )
            delivery = await catalog.record(conn, self.box, video)
        await self.box.deliver_now(delivery)
        with contextlib.suppress(*storage.STORAGE_ERRORS):
            await storage.delete_keys(self.s3, self.bucket, [tail_key(upload.id)])
        return dataclasses.replace(
            upload, offset=upload.length, etags=tuple(etags), tail_bytes=0, completed=True
        )

    async def _check(self, upload: Upload) -> mp4.Mp4Info:
        async def read(offset: int, length: int) -> bytes:
            return await storage.read_range(self.s3, self.bucket, upload.key, offset, length)

        try:
            info = await mp4.probe(read, upload.length, max_moov_bytes=self.limits.max_moov_bytes)
        except mp4.Mp4Error as exc:
            raise self.limits.refusal(exc) from None
        self.limits.check(info)
        return info

    async def terminate(self, upload: Upload) -> None:
        if upload.completed:
            raise TusError(409, "La subida ya está completa; borre el video en su lugar")
        await abort_upload(self.s3, self.bucket, upload.key, upload.s3_upload_id)
        await storage.delete_keys(self.s3, self.bucket, [tail_key(upload.id)])
        await self.pool.execute(tus_queries.DELETE, upload.id)

    async def expire(self, batch: int = 100) -> int:
        return await expire(self.pool, self.s3, self.bucket, batch)


async def expire(pool: asyncpg.Pool, s3: Any, bucket: str, batch: int = 100) -> int:
    """Forget expired uploads: abort unfinished ones and remove their tails."""
    removed = 0
    async with pool.acquire() as conn, conn.transaction():
        for row in await conn.fetch(tus_queries.EXPIRED, batch):
            upload = Upload.from_row(row)
            if not upload.completed:
                await abort_upload(s3, bucket, upload.key, upload.s3_upload_id)
                await storage.delete_keys(s3, bucket, [tail_key(upload.id)])
            await conn.execute(tus_queries.DELETE, upload.id)
            removed += 1
    return removed


def _title(metadata: dict[str, str]) -> str:
    raw = metadata.get("title") or metadata.get("filename")
    if not raw:
        raise TusError(400, "Upload-Metadata debe incluir el título del video (title)")
    title = clean_title(raw)
    if title is None:
        raise TusError(400, messages.BAD_TITLE)
    return title


class _Appender:
    """The bytes of one request, cut into S3 parts, with what cannot fill a part kept aside.

    The part being filled comes from the process's PartStore, as a streamed upload's does
    (memory, then the spill directory), and is sent from there without a copy."""

    def __init__(self, uploads: TusUploads, upload: Upload) -> None:
        self.uploads = uploads
        self.upload = upload
        self.received = upload.offset
        self.etags = list(upload.etags)
        self.part: Part | None = None
        self.saved = False

    async def start(self) -> None:
        """Take a part now (capacity.Busy if there is no room: a request never queues for
        one) and put the tail a previous request left into it."""
        self.part = self.uploads.buffers.take_now()
        if not self.upload.tail_bytes:
            return
        response = await self.uploads.s3.get_object(
            Bucket=self.uploads.bucket, Key=tail_key(self.upload.id)
        )
        async with response["Body"] as body:
            async for chunk in body.iter_chunks(TAIL_READ_BYTES):
                self.part.write(memoryview(chunk))
        if self.part.size != self.upload.tail_bytes:
            raise TusError(503, "No se pudo leer la subida; intente de nuevo")

    def release(self) -> None:
        if self.part is not None:
            self.part.close()
            self.part = None

    async def write(self, chunk: bytes) -> None:
        if self.received + len(chunk) > self.upload.length:
            raise TusError(400, "El cuerpo supera Upload-Length")
        if self.received == 0 and chunk:
            _check_head(chunk)
        view = memoryview(chunk)
        while view:
            if self.part is None:
                self.part = await self.uploads.buffers.take()
            taken = self.part.write(view)
            self.received += taken
            metrics.BYTES_INGESTED.labels("tus").inc(taken)
            view = view[taken:]
            # A full part is sent unless it is the very last one: that one completes the upload.
            if self.part.full and self.received < self.upload.length:
                await self._send_part()

    async def _upload_part(self) -> None:
        """Send the part being filled as the next part; it is freed once S3 has it."""
        assert self.part is not None
        body = self.part.seal()
        response = await self.uploads.s3.upload_part(
            Bucket=self.uploads.bucket,
            Key=self.upload.key,
            UploadId=self.upload.s3_upload_id,
            PartNumber=len(self.etags) + 1,
            Body=body,
            ContentLength=len(body),
            **body.checksum,
        )
        self.etags.append(response["ETag"])
        self.release()

    async def _send_part(self) -> None:
        await self._upload_part()
        await self._advance(self.received, 0)

    async def _advance(self, offset: int, tail_bytes: int) -> None:
        done = await self.uploads.pool.execute(
            tus_queries.ADVANCE, self.upload.id, self.upload.offset, offset, self.etags, tail_bytes
        )
        if done != "UPDATE 1":
            raise TusError(409, "Otra petición modificó esta subida al mismo tiempo")
        self.upload = dataclasses.replace(
            self.upload, offset=offset, etags=tuple(self.etags), tail_bytes=tail_bytes
        )

    async def keep_what_arrived(self) -> Upload:
        """Store the incomplete part as the tail object and record the new offset."""
        if self.saved or self.received == self.upload.offset:
            return self.upload
        self.saved = True
        filled = self.part.size if self.part is not None else 0
        body = self.part.seal() if self.part is not None else PartBody(memoryview(b""))
        await self.uploads.s3.put_object(
            Bucket=self.uploads.bucket,
            Key=tail_key(self.upload.id),
            Body=body,
            ContentLength=len(body),
            **body.checksum,
        )
        await self._advance(self.received, filled)
        return self.upload

    async def flush_last_part(self) -> list[str]:
        """Send what is left as the last part and record the upload as whole (not yet done)."""
        if (self.part is not None and self.part.size) or not self.etags:
            if self.part is None:
                self.part = await self.uploads.buffers.take()
            await self._upload_part()
        if (self.upload.offset, self.upload.tail_bytes) != (self.upload.length, 0) or (
            tuple(self.etags) != self.upload.etags
        ):
            await self._advance(self.upload.length, 0)
        return self.etags


def _check_head(chunk: bytes) -> None:
    """The first bytes must open an MP4 (`ftyp`): refuse anything else at once."""
    if len(chunk) >= 8 and chunk[4:8] != b"ftyp":
        raise TusError(400, "El archivo no es un video MP4 válido")


async def expire_forever(clients: Any, settings: Any) -> None:
    """The worker's loop: expired tus uploads removed every CLEANUP_INTERVAL_SECONDS."""
    while True:
        try:
            removed = await expire(clients.pool, clients.s3, settings.s3_bucket)
            if removed:
                log.info("expired tus uploads removed", extra={"count": removed})
        except (asyncpg.PostgresError, OSError, ClientError, errors.Unavailable) as exc:
            log.warning("tus expiry failed", extra={"error": repr(exc)})
        await asyncio.sleep(settings.cleanup_interval_seconds)
