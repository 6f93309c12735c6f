"""Write a stream into S3 as a multipart upload, part by part, in bounded memory.

Parts are filled in buffers borrowed from a process-wide pool, so memory stays bounded by the
pool whatever the number of concurrent uploads (a full pool makes readers wait, which pushes
back on clients through TCP). Each upload keeps a few parts in flight to match the throughput of
a client uploading parts to S3 itself. A file that fits in one part is stored with a single
PutObject after it has been validated.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import AsyncIterator
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

log = logging.getLogger("risingstars.upload.s3")


class StorageError(Exception):
    """S3 refused or could not be reached; the upload cannot be stored."""


class PartBody:
    """A part's bytes as botocore and aiohttp want them, without copying the part.

    botocore sees a seekable file (it hashes the body, and rewinds it to retry); aiohttp sees
    an async iterable and sends it slice by slice, so its socket buffer never holds more than
    a slice. Not an io.IOBase on purpose: aiohttp would read those in a thread, 64 KiB at a time.
    """

    SLICE = 256 * 1024

    def __init__(self, view: memoryview) -> None:
        self._view = view
        self._pos = 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._view) if size is None or size < 0 else self._pos + size
        chunk = bytes(self._view[self._pos : end])
        self._pos += len(chunk)
        return chunk

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self._view)}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def __len__(self) -> int:
        return len(self._view)

    async def __aiter__(self) -> AsyncIterator[memoryview]:
        # Always the whole part: a retried request iterates afresh.
        for start in range(0, len(self._view), self.SLICE):
            yield self._view[start : start + self.SLICE]


class BufferPool:
    """`count` reusable buffers of `size` bytes, created on first use and then kept, so the
    allocator never fragments under a stream of uploads."""

    def __init__(self, size: int, count: int) -> None:
        self.size = size
        self.count = count
        self._free: list[bytearray] = []
        self._available = asyncio.Semaphore(count)
        self.in_use = 0

    async def acquire(self) -> bytearray:
        await self._available.acquire()
        self.in_use += 1
        return self._free.pop() if self._free else bytearray(self.size)

    def release(self, buffer: bytearray) -> None:
        self.in_use -= 1
        self._free.append(buffer)
        self._available.release()


class MultipartWriter:
    def __init__(
        self,
        s3: Any,
        bucket: str,
        key: str,
        pool: BufferPool,
        *,
        parts_in_flight: int = 3,
        content_type: str = "video/mp4",
    ) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.key = key
        self.pool = pool
        self.content_type = content_type
        self.upload_id: str | None = None
        self.bytes_written = 0
        # The buffer being filled counts against the window too.
        self._window = asyncio.Semaphore(parts_in_flight)
        self._buffer: bytearray | None = None
        self._fill = 0
        self._next_part = 1
        self._etags: dict[int, str] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._error: BaseException | None = None
        self._closed = False

    async def write(self, data: bytes | memoryview) -> None:
        self._raise_if_failed()
        view = memoryview(data)
        while view:
            if self._buffer is None:
                await self._take_buffer()
            buffer = self._buffer
            assert buffer is not None
            n = min(len(view), self.pool.size - self._fill)
            buffer[self._fill : self._fill + n] = view[:n]
            self._fill += n
            self.bytes_written += n
            view = view[n:]
            if self._fill == self.pool.size:
                await self._send_part()

    async def _take_buffer(self) -> None:
        await self._window.acquire()
        try:
            self._buffer = await self.pool.acquire()
        except BaseException:
            self._window.release()
            raise
        self._fill = 0

    def _drop_buffer(self) -> None:
        if self._buffer is not None:
            self.pool.release(self._buffer)
            self._window.release()
            self._buffer = None
            self._fill = 0

    async def _send_part(self) -> None:
        if self.upload_id is None:
            try:
                created = await self.s3.create_multipart_upload(
                    Bucket=self.bucket, Key=self.key, ContentType=self.content_type
                )
            except (BotoCoreError, ClientError) as exc:
                raise StorageError(f"CreateMultipartUpload failed: {exc}") from exc
            self.upload_id = created["UploadId"]
        number = self._next_part
        self._next_part += 1
        buffer, size = self._buffer, self._fill
        assert buffer is not None
        self._buffer = None
        self._fill = 0
        task = asyncio.create_task(self._upload_part(number, buffer, size))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _upload_part(self, number: int, buffer: bytearray, size: int) -> None:
        try:
            response = await self.s3.upload_part(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self.upload_id,
                PartNumber=number,
                Body=PartBody(memoryview(buffer)[:size]),
                ContentLength=size,
            )
            self._etags[number] = response["ETag"]
        except Exception as exc:
            if self._error is None:
                self._error = exc
        finally:
            self.pool.release(buffer)
            self._window.release()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise StorageError(f"UploadPart failed: {self._error}") from self._error

    async def finish(self) -> None:
        """Store what was written: one PutObject, or the last part and CompleteMultipartUpload."""
        self._raise_if_failed()
        try:
            if self.upload_id is None:
                view = memoryview(self._buffer or b"")[: self._fill]
                await self.s3.put_object(
                    Bucket=self.bucket,
                    Key=self.key,
                    Body=PartBody(view),
                    ContentLength=len(view),
                    ContentType=self.content_type,
                )
                self._drop_buffer()
            else:
                if self._fill:
                    await self._send_part()
                else:
                    self._drop_buffer()
                if self._tasks:
                    await asyncio.gather(*self._tasks)
                self._raise_if_failed()
                parts = [{"PartNumber": n, "ETag": e} for n, e in sorted(self._etags.items())]
                await self.s3.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=self.key,
                    UploadId=self.upload_id,
                    MultipartUpload={"Parts": parts},
                )
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"storing {self.key} failed: {exc}") from exc
        self._closed = True

    async def abort(self, *, wait_seconds: float = 30) -> None:
        """Drop everything: no part may outlive this (a part still uploading when
        AbortMultipartUpload runs could be stored after it, so they are awaited first)."""
        if self._closed:
            return
        self._closed = True
        self._drop_buffer()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=wait_seconds)
            for task in pending:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*pending, return_exceptions=True)
        if self.upload_id is None:
            return
        await abort_upload(self.s3, self.bucket, self.key, self.upload_id)


async def abort_upload(s3: Any, bucket: str, key: str, upload_id: str) -> bool:
    """AbortMultipartUpload, tolerating one already gone; False if S3 could not be reached
    (the periodic cleanup will abort it later)."""
    for attempt in range(3):
        try:
            await s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"NoSuchUpload", "404"}:
                return True
            error: Exception = exc
        except BotoCoreError as exc:
            error = exc
        log.warning(
            "abort multipart upload failed",
            extra={"key": key, "attempt": attempt + 1, "error": repr(error)},
        )
        await asyncio.sleep(0.2 * (attempt + 1))
    return False
