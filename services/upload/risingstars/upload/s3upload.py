"""Write a stream into S3 as a multipart upload, part by part, in bounded memory.

Parts come from the process's PartStore (a few memory buffers, then spill files), so memory
stays bounded whatever the number of concurrent uploads. Each upload keeps a few parts in
flight to match the throughput of a client uploading parts to S3 itself. A file that fits in
one part is stored with a single PutObject after it has been validated.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import logging
import os
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from risingstars.upload.spill import Part, PartStore

log = logging.getLogger("risingstars.upload.s3")


class StorageError(Exception):
    """S3 refused or could not be reached; the upload cannot be stored."""


class PartBody:
    """A part's bytes as botocore and aiohttp want them, without copying the part.

    botocore sees a seekable file (it hashes the body, and rewinds it to retry); aiohttp sees
    an async iterable and sends it slice by slice, so its socket buffer never holds more than
    a slice. Not an io.IOBase on purpose: aiohttp would read those in a thread, 64 KiB at a time.
    """

    # Whatever the socket does not take at once waits in its transport: one slice per
    # connection, and the service keeps up to 50 of them busy.
    SLICE = 64 * 1024

    def __init__(self, view: memoryview, crc32: int | None = None) -> None:
        self._view = view
        self._size = len(view)
        self._pos = 0
        self._crc32 = crc32

    @property
    def checksum(self) -> dict[str, str]:
        """S3's checksum parameter for the part, computed as its bytes arrived: without it
        botocore reads the whole part once more to compute the same CRC32 (9 % of the upload
        process's CPU under load) before sending it."""
        if self._crc32 is None:
            return {}
        # The same two headers botocore sends when it computes the checksum itself.
        return {
            "ChecksumAlgorithm": "CRC32",
            "ChecksumCRC32": base64.b64encode(self._crc32.to_bytes(4, "big")).decode(),
        }

    def _read_at(self, offset: int, size: int) -> bytes | memoryview:
        return self._view[offset : offset + size]

    def read(self, size: int = -1) -> bytes:
        end = self._size if size is None or size < 0 else min(self._size, self._pos + size)
        chunk = bytes(self._read_at(self._pos, max(0, end - self._pos)))
        self._pos += len(chunk)
        return chunk

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def __len__(self) -> int:
        return self._size

    async def __aiter__(self) -> AsyncIterator[bytes | memoryview]:
        # Always the whole part: a retried request iterates afresh.
        for start in range(0, self._size, self.SLICE):
            yield self._read_at(start, min(self.SLICE, self._size - start))


class FileBody(PartBody):
    """A part spilled to a file, read slice by slice (local scratch disk, mostly page cache)."""

    def __init__(self, fd: int, size: int, crc32: int | None = None) -> None:
        self._fd = fd
        self._size = size
        self._pos = 0
        self._crc32 = crc32

    def _read_at(self, offset: int, size: int) -> bytes:
        return os.pread(self._fd, size, offset)


class MultipartWriter:
    def __init__(
        self,
        s3: Any,
        bucket: str,
        key: str,
        store: PartStore,
        *,
        parts_in_flight: int = 3,
        content_type: str = "video/mp4",
    ) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.key = key
        self.store = store
        self.content_type = content_type
        self.upload_id: str | None = None
        self.bytes_written = 0
        # The part being filled counts against the window too.
        self._window = asyncio.Semaphore(parts_in_flight)
        self._part: Part | None = None
        self._next_part = 1
        self._etags: dict[int, str] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._error: BaseException | None = None
        self._closed = False

    async def reserve(self) -> None:
        """Take the first part now, or raise capacity.Busy: an upload is only started when
        there is room to hold it."""
        await self._window.acquire()  # free: nothing is in flight yet
        try:
            self._part = self.store.take_now()
        except BaseException:
            self._window.release()
            raise

    async def write(self, data: bytes | memoryview) -> None:
        self._raise_if_failed()
        view = memoryview(data)
        while view:
            if self._part is None:
                await self._take_part()
            assert self._part is not None
            n = self._part.write(view)
            self.bytes_written += n
            view = view[n:]
            if self._part.full:
                await self._send_part()

    async def _take_part(self) -> None:
        await self._window.acquire()
        try:
            self._part = await self.store.take()
        except BaseException:
            self._window.release()
            raise

    def _drop_part(self) -> None:
        if self._part is not None:
            self._part.close()
            self._window.release()
            self._part = None

    async def _send_part(self) -> None:
        part = self._part
        assert part is not None
        body = part.seal()
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
        self._part = None
        task = asyncio.create_task(self._upload_part(number, part, body))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _upload_part(self, number: int, part: Part, body: PartBody) -> None:
        try:
            response = await self.s3.upload_part(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self.upload_id,
                PartNumber=number,
                Body=body,
                ContentLength=len(body),
                **body.checksum,
            )
            self._etags[number] = response["ETag"]
        except Exception as exc:
            if self._error is None:
                self._error = exc
        finally:
            part.close()
            self._window.release()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise StorageError(f"UploadPart failed: {self._error}") from self._error

    async def finish(self) -> None:
        """Store what was written: one PutObject, or the last part and CompleteMultipartUpload."""
        self._raise_if_failed()
        try:
            if self.upload_id is None:
                body = self._part.seal() if self._part is not None else PartBody(memoryview(b""))
                await self.s3.put_object(
                    Bucket=self.bucket,
                    Key=self.key,
                    Body=body,
                    ContentLength=len(body),
                    ContentType=self.content_type,
                    **body.checksum,
                )
                self._drop_part()
            else:
                if self._part is not None and self._part.size:
                    await self._send_part()
                else:
                    self._drop_part()
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
        self._drop_part()
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
