"""The streamed upload (`POST /api/videos/upload`): the form's file goes straight into an S3
multipart upload, its MP4 checked on the way; whatever ends it early aborts the S3 upload."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from collections.abc import AsyncIterator, Mapping

import asyncpg
from starlette.requests import ClientDisconnect
from starlette.types import Receive

from risingstars.kit import db, errors
from risingstars.upload import capacity, catalog, intake, messages, metrics, mp4, storage
from risingstars.upload.formstream import (
    FormError,
    FormStream,
    PartData,
    PartEnd,
    PartStart,
    boundary_of,
)
from risingstars.upload.intake import BAD_FORM, Intake, UploadPolicy, body_of, paced
from risingstars.upload.s3upload import MultipartWriter, StorageError
from risingstars.upload.spill import PartStore

log = logging.getLogger("risingstars.upload.streamed")

FILE_FIELD = "video_file"
TITLE_FIELD = "title"
# Everything but the file (title, unknown fields, part headers) stays small.
MAX_FIELD_BYTES = 4096
MAX_OTHER_BYTES = 16 * 1024
# Room for boundaries and the other fields when judging a request by its Content-Length.
FORM_OVERHEAD_BYTES = 64 * 1024


def _bad_form(detail: str) -> errors.Invalid:
    return intake.refused(BAD_FORM, detail)


class _Form:
    def __init__(self, writer: MultipartWriter, policy: UploadPolicy) -> None:
        self.writer = writer
        self.policy = policy
        self.scanner = mp4.Mp4Scanner(
            max_moov_bytes=policy.max_moov_bytes, max_file_bytes=policy.max_bytes
        )
        self.field: str | None = None
        self.file_seen = False
        self.file_done = False
        self.size = 0
        self.title: str | None = None
        self.info: mp4.Mp4Info | None = None
        self._value = bytearray()
        self._other_bytes = 0

    async def handle(self, event: PartStart | PartData | PartEnd) -> None:
        if isinstance(event, PartData):
            if self.field == FILE_FIELD:
                await self._file_data(event.data)
            else:
                self._field_data(event.data)
        elif isinstance(event, PartStart):
            self._start(event)
        else:
            self._end()

    def _start(self, event: PartStart) -> None:
        if event.name == FILE_FIELD:
            if self.file_seen:
                raise _bad_form(messages.DUPLICATE_FILE)
            self.file_seen = True
        self.field = event.name
        self._value.clear()

    async def _file_data(self, data: memoryview) -> None:
        self.size += len(data)
        self.policy.check_size(self.size)
        try:
            info = self.scanner.feed(data)
        except mp4.Mp4Error as exc:
            raise self.policy.refusal(exc) from None
        if info is not None:
            # moov came early (fast-start file): refuse now rather than after the upload.
            self.policy.check(info)
        metrics.BYTES_INGESTED.labels("stream").inc(len(data))
        await self.writer.write(data)

    def _field_data(self, data: memoryview) -> None:
        self._other_bytes += len(data)
        if self._other_bytes > MAX_OTHER_BYTES:
            raise _bad_form(messages.FIELD_TOO_LARGE)
        if self.field == TITLE_FIELD:
            if len(self._value) + len(data) > MAX_FIELD_BYTES:
                raise intake.refused(intake.BAD_TITLE, messages.BAD_TITLE)
            self._value += data

    def _end(self) -> None:
        if self.field == FILE_FIELD:
            self.file_done = True
            try:
                self.info = self.scanner.finish()
            except mp4.Mp4Error as exc:
                raise self.policy.refusal(exc) from None
            self.policy.check(self.info)
        elif self.field == TITLE_FIELD:
            try:
                raw = self._value.decode("utf-8")
            except UnicodeDecodeError:
                raise intake.refused(intake.BAD_TITLE, messages.BAD_TITLE) from None
            self.title = intake.title(raw)
        self.field = None


async def receive_form(
    chunks: AsyncIterator[bytes],
    content_type: str | None,
    writer: MultipartWriter,
    policy: UploadPolicy,
) -> tuple[str, int, mp4.Mp4Info]:
    """Read the form from `chunks` into `writer`; on any error the S3 upload is aborted."""
    try:
        form_stream = FormStream(boundary_of(content_type))
    except FormError:
        raise _bad_form(messages.NOT_MULTIPART) from None
    await writer.reserve()
    form = _Form(writer, policy)
    try:
        async with intake.deadline(policy.deadline_seconds):
            await _read(chunks, form_stream, form, policy.idle_seconds)
            await writer.finish()
    except BaseException:
        # Shielded: a cancelled request (server shutdown) must still clean up.
        await asyncio.shield(writer.abort())
        raise
    assert form.title is not None and form.info is not None
    return form.title, form.size, form.info


async def _read(
    chunks: AsyncIterator[bytes], form_stream: FormStream, form: _Form, idle_seconds: float
) -> None:
    async for chunk in paced(chunks, idle_seconds):
        try:
            events = form_stream.feed(chunk)
        except FormError:
            raise _bad_form(messages.BAD_MULTIPART) from None
        del chunk  # see body_of
        for event in events:
            await form.handle(event)
        if form_stream.finished:
            break
    if not form_stream.finished:
        raise _bad_form(messages.BAD_MULTIPART)
    if not form.file_done or form.info is None:
        raise _bad_form(messages.MISSING_FILE)
    if form.title is None:
        raise _bad_form(messages.MISSING_TITLE)


# Faults of the database while recording a stored upload: its file is deleted, 503.
DB_ERRORS = (asyncpg.PostgresError, asyncpg.InternalClientError, *db.UNAVAILABLE)


@dataclasses.dataclass
class StreamedUploads:
    intake: Intake
    buffers: PartStore
    slots: capacity.UserSlots
    parts_in_flight: int

    async def upload(
        self, owner: catalog.Uploader, headers: Mapping[str, str], receive: Receive
    ) -> dict[str, str]:
        started = time.perf_counter()
        try:
            video_id = await self._upload(owner, headers, receive)
        except ClientDisconnect:
            intake.tally("stream", "aborted", "disconnect", started)
            log.info("upload abandoned by the client")
            raise errors.Invalid(messages.CLIENT_GONE, code="disconnect") from None
        except StorageError as exc:
            intake.tally("stream", "failed", "storage", started)
            raise intake.storage_down(exc) from None
        except errors.ServiceError as exc:
            intake.tally("stream", intake.outcome(exc), exc.code, started)
            log.info("upload refused", extra={"code": exc.code, "user_id": owner.user_id})
            raise
        intake.tally("stream", "accepted", "ok", started)
        return intake.uploaded(video_id)

    async def _upload(
        self, owner: catalog.Uploader, headers: Mapping[str, str], receive: Receive
    ) -> uuid.UUID:
        policy = self.intake.policy
        length = headers.get("content-length", "")
        # A declared body this long cannot hold a file within the limit: refused unread.
        if length.isdigit() and int(length) > policy.max_bytes + FORM_OVERHEAD_BYTES:
            raise policy.too_large()
        async with self.intake.pool.acquire(timeout=intake.UPLOAD_DB_WAIT_SECONDS) as conn:
            await intake.check_quota(conn, owner.user_id, policy.daily_quota)
        video_id = uuid.uuid4()
        key = storage.original_key(video_id)
        writer = MultipartWriter(
            self.intake.s3, self.intake.bucket, key, self.buffers,
            parts_in_flight=self.parts_in_flight,
        )  # fmt: skip
        with self.slots.hold(owner.user_id):
            title, size, info = await receive_form(
                body_of(receive), headers.get("content-type"), writer, policy
            )
        video = catalog.NewVideo(video_id, owner, title, size, info)
        try:
            await self.intake.accept(video, wait_seconds=intake.UPLOAD_DB_WAIT_SECONDS)
        except DB_ERRORS as exc:
            log.error("upload not recorded", extra={"error": repr(exc)})
            with contextlib.suppress(*storage.STORAGE_ERRORS, RuntimeError):
                await storage.delete_keys(self.intake.s3, self.intake.bucket, [key])
            raise errors.Unavailable(errors.DATABASE_DOWN) from None
        log.info(
            "upload accepted",
            extra={"video_id": str(video_id), "bytes": size, "user_id": owner.user_id},
        )
        return video_id
