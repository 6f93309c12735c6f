"""The streaming upload: a multipart/form-data body goes straight into an S3 multipart upload
while the MP4 is checked on the way through. Nothing is kept but the parts being filled or
sent (from the process's PartStore: memory, then spill files) and the moov box.

Any rejection, client disconnect, silence past the idle limit, deadline, cancellation or storage
fault aborts the S3 upload (and frees its parts) before the caller answers, so no part outlives
a refused upload.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import ClientDisconnect
from starlette.types import Receive

from risingstars.upload import messages, metrics, mp4
from risingstars.upload.capacity import TimedOut
from risingstars.upload.formstream import (
    FormError,
    FormStream,
    PartData,
    PartEnd,
    PartStart,
    boundary_of,
)
from risingstars.upload.s3upload import MultipartWriter
from risingstars.upload.spill import PartStore
from risingstars.upload.text import clean_title

FILE_FIELD = "video_file"
TITLE_FIELD = "title"
# Everything but the file (title, unknown fields, part headers) stays small.
MAX_FIELD_BYTES = 4096
MAX_OTHER_BYTES = 16 * 1024
# Room for boundaries and the other fields when judging a request by its Content-Length.
FORM_OVERHEAD_BYTES = 64 * 1024


class BadUpload(Exception):
    """The upload itself is bad (form, size, MP4): a 400; `detail` is for the client, `reason`
    for metrics. (Not `Rejected`: that is the processor's word for a video it cannot process.)"""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclasses.dataclass(frozen=True)
class Limits:
    max_bytes: int
    min_duration: float
    max_duration: float
    min_short_side: int
    max_moov_bytes: int


@dataclasses.dataclass(frozen=True)
class Received:
    title: str
    size: int
    info: mp4.Mp4Info


def check_info(info: mp4.Mp4Info, limits: Limits) -> None:
    if not limits.min_duration <= info.duration_seconds <= limits.max_duration:
        raise BadUpload(
            "duration",
            messages.bad_duration(info.duration_seconds, limits.min_duration, limits.max_duration),
        )
    if info.short_side < limits.min_short_side:
        raise BadUpload(
            "resolution", messages.bad_resolution(info.width, info.height, limits.min_short_side)
        )


def rejection(error: mp4.Mp4Error, limits: Limits) -> BadUpload:
    if error.code == mp4.TOO_LARGE:
        return BadUpload("too_large", messages.too_large(limits.max_bytes))
    if error.code == mp4.TRUNCATED:
        return BadUpload("truncated", messages.TRUNCATED)
    if error.code == mp4.MOOV_TOO_LARGE:
        return BadUpload("invalid", messages.MOOV_TOO_LARGE)
    if error.code == mp4.NOT_MP4:
        return BadUpload("not_mp4", messages.NOT_MP4)
    return BadUpload("invalid", messages.NOT_MP4)


def too_large_by_length(content_length: str | None, limits: Limits) -> bool:
    """A declared body this long cannot hold a file within the limit: refuse unread."""
    return (
        content_length is not None
        and content_length.isdigit()
        and int(content_length) > limits.max_bytes + FORM_OVERHEAD_BYTES
    )


class _Form:
    """What has been read so far, and the checks applied as each piece arrives."""

    def __init__(self, writer: MultipartWriter, limits: Limits) -> None:
        self.writer = writer
        self.limits = limits
        self.scanner = mp4.Mp4Scanner(
            max_moov_bytes=limits.max_moov_bytes, max_file_bytes=limits.max_bytes
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
                raise BadUpload("bad_form", messages.DUPLICATE_FILE)
            self.file_seen = True
        self.field = event.name
        self._value.clear()

    async def _file_data(self, data: memoryview) -> None:
        self.size += len(data)
        if self.size > self.limits.max_bytes:
            raise BadUpload("too_large", messages.too_large(self.limits.max_bytes))
        try:
            info = self.scanner.feed(data)
        except mp4.Mp4Error as exc:
            raise rejection(exc, self.limits) from None
        if info is not None:
            # moov came early (fast-start file): refuse now rather than after the upload.
            check_info(info, self.limits)
        metrics.BYTES_INGESTED.labels("stream").inc(len(data))
        await self.writer.write(data)

    def _field_data(self, data: memoryview) -> None:
        self._other_bytes += len(data)
        if self._other_bytes > MAX_OTHER_BYTES:
            raise BadUpload("bad_form", messages.FIELD_TOO_LARGE)
        if self.field == TITLE_FIELD:
            if len(self._value) + len(data) > MAX_FIELD_BYTES:
                raise BadUpload("bad_form", messages.BAD_TITLE)
            self._value += data

    def _end(self) -> None:
        if self.field == FILE_FIELD:
            self.file_done = True
            try:
                self.info = self.scanner.finish()
            except mp4.Mp4Error as exc:
                raise rejection(exc, self.limits) from None
            check_info(self.info, self.limits)
        elif self.field == TITLE_FIELD:
            try:
                title = clean_title(self._value.decode("utf-8"))
            except UnicodeDecodeError:
                title = None
            if title is None:
                raise BadUpload("bad_form", messages.BAD_TITLE)
            self.title = title
        self.field = None


@dataclasses.dataclass(frozen=True)
class Pace:
    """How long a client may go without sending anything, and how long an upload may take."""

    idle_seconds: float
    deadline_seconds: float


async def receive(
    chunks: AsyncIterator[bytes],
    content_type: str | None,
    *,
    s3: Any,
    bucket: str,
    key: str,
    buffers: PartStore,
    limits: Limits,
    pace: Pace,
    parts_in_flight: int,
) -> Received:
    """Read the form from `chunks` into `key`; raise BadUpload, TimedOut (or the client's
    disconnect, or a StorageError) with the S3 upload already aborted, or capacity.Busy
    before reading anything."""
    try:
        form_stream = FormStream(boundary_of(content_type))
    except FormError:
        raise BadUpload("bad_form", messages.NOT_MULTIPART) from None
    writer = MultipartWriter(s3, bucket, key, buffers, parts_in_flight=parts_in_flight)
    await writer.reserve()
    form = _Form(writer, limits)
    try:
        try:
            async with asyncio.timeout(pace.deadline_seconds) as deadline:
                await _read(chunks, form_stream, form, pace.idle_seconds)
                await writer.finish()
        except TimeoutError:
            if not deadline.expired():
                raise
            raise TimedOut("deadline", messages.upload_deadline(pace.deadline_seconds)) from None
    except BaseException:
        # Shielded: a cancelled request (server shutdown) must still clean up.
        await asyncio.shield(writer.abort())
        raise
    assert form.title is not None and form.info is not None
    return Received(title=form.title, size=form.size, info=form.info)


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


async def paced(chunks: AsyncIterator[bytes], idle_seconds: float) -> AsyncIterator[bytes]:
    """`chunks`, cut off with TimedOut("idle") once the client sends nothing for
    `idle_seconds`. Only the client's silence counts: time the caller spends waiting for room
    for a part is ours."""
    received = aiter(chunks)
    while True:
        try:
            async with asyncio.timeout(idle_seconds):
                chunk = await anext(received)
        except StopAsyncIteration:
            return
        except TimeoutError:
            metrics.IDLE_ABORTED.inc()
            raise TimedOut("idle", messages.upload_idle(idle_seconds)) from None
        yield chunk
        del chunk  # see body_of


async def _read(
    chunks: AsyncIterator[bytes], form_stream: FormStream, form: _Form, idle_seconds: float
) -> None:
    async for chunk in paced(chunks, idle_seconds):
        await _feed(form_stream, form, chunk)
        del chunk  # see body_of
        if form_stream.finished:
            break
    if not form_stream.finished:
        raise BadUpload("bad_form", messages.BAD_MULTIPART)
    if not form.file_done or form.info is None:
        raise BadUpload("bad_form", messages.MISSING_FILE)
    if form.title is None:
        raise BadUpload("bad_form", messages.MISSING_TITLE)


async def _feed(form_stream: FormStream, form: _Form, chunk: bytes) -> None:
    try:
        events = form_stream.feed(chunk)
    except FormError:
        raise BadUpload("bad_form", messages.BAD_MULTIPART) from None
    for event in events:
        await form.handle(event)
