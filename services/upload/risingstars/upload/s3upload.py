"""Write a stream into S3 as a multipart upload, part by part, in bounded memory: parts come
from the process's PartStore, a few in flight per upload (as fast as a client sending parts to
S3 itself); a file that fits in one part is stored with one PutObject once validated."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from risingstars.kit import aws
from risingstars.upload.partbody import PartBody
from risingstars.upload.spill import Part, PartStore

log = logging.getLogger("risingstars.upload.s3")

ABORT_WAIT_SECONDS = 30


class StorageError(Exception):
    """S3 refused or could not be reached; the upload cannot be stored."""


class MultipartWriter:
    """Bytes in, whole parts out to S3 as they fill. A tus request continues an upload (its
    `upload_id`, the `etags` sent) and may keep the part it was filling (`partial`)."""

    def __init__(
        self,
        s3: Any,
        bucket: str,
        key: str,
        store: PartStore,
        *,
        parts_in_flight: int,
        upload_id: str | None = None,
        etags: Sequence[str] = (),
    ) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.key = key
        self.store = store
        self.upload_id = upload_id
        # The part being filled counts against the window too.
        self._window = asyncio.Semaphore(parts_in_flight)
        self._part: Part | None = None
        self._etags: dict[int, str] = dict(enumerate(etags, 1))
        self._next_part = len(self._etags) + 1
        self._tasks: set[asyncio.Task[None]] = set()
        self._error: BaseException | None = None
        self._closed = False

    async def reserve(self) -> None:
        """Take the first part, in turn (PartStore.admit): an upload starts only with room."""
        await self._take_part(self.store.admit)

    async def write(self, data: bytes | memoryview) -> None:
        self._raise_if_failed()
        view = memoryview(data)
        while view:
            if self._part is None:
                await self._take_part(self.store.take)
            assert self._part is not None
            view = view[self._part.write(view) :]
            if self._part.full:
                await self._send_part()

    async def _take_part(self, take: Callable[[], Awaitable[Part]]) -> None:
        await self._window.acquire()
        try:
            self._part = await take()
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
                    Bucket=self.bucket, Key=self.key, ContentType="video/mp4"
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

    @property
    def partial(self) -> Part | None:  # the part being filled, not yet sent
        return self._part

    async def send_rest(self) -> list[str]:
        """Send the part being filled, if not empty, and wait for every part; their ETags."""
        if self._part is not None and self._part.size:
            await self._send_part()
        else:
            self._drop_part()
        return await self.drain()

    async def drain(self) -> list[str]:
        if self._tasks:
            await asyncio.gather(*self._tasks)
        self._raise_if_failed()
        return [self._etags[n] for n in range(1, self._next_part)]

    async def release(self) -> None:
        """Drop the part being filled and wait for those in flight, leaving the S3 upload open."""
        self._drop_part()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise StorageError(f"UploadPart failed: {self._error}") from self._error

    async def finish(self) -> None:
        self._raise_if_failed()
        try:
            if self.upload_id is None:
                body = self._part.seal() if self._part is not None else PartBody(memoryview(b""))
                await self.s3.put_object(
                    Bucket=self.bucket,
                    Key=self.key,
                    Body=body,
                    ContentLength=len(body),
                    ContentType="video/mp4",
                    **body.checksum,
                )
                self._drop_part()
            else:
                etags = await self.send_rest()
                parts = [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]
                await self.s3.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=self.key,
                    UploadId=self.upload_id,
                    MultipartUpload={"Parts": parts},
                )
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"storing {self.key} failed: {exc}") from exc
        self._closed = True

    async def abort(self) -> None:
        """Drop everything, awaiting parts in flight (one could be stored after the abort)."""
        if self._closed:
            return
        self._closed = True
        self._drop_part()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=ABORT_WAIT_SECONDS)
            for task in pending:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*pending, return_exceptions=True)
        if self.upload_id is None:
            return
        await abort_upload(self.s3, self.bucket, self.key, self.upload_id)


async def abort_upload(s3: Any, bucket: str, key: str, upload_id: str) -> bool:
    """AbortMultipartUpload, one already gone included; False if S3 could not be reached."""
    for attempt in range(3):
        try:
            await s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            return True
        except ClientError as exc:
            if aws.error_code(exc) in {"NoSuchUpload", "404"}:
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
