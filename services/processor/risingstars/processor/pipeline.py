"""One job, from the original in S3 to the processed video and thumbnail beside it.

Outputs are written under the job's deterministic keys with the source's ETag in their metadata,
the thumbnail before the video: a video object whose `source-etag` matches the current original
proves both are complete, so a redelivered job republishes its event without encoding again.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import time
from pathlib import Path
from typing import Any

import aiohttp
from botocore.exceptions import BotoCoreError, ClientError

from risingstars.jobs import Job, Processed, Reason
from risingstars.processor import media, metrics, scratch
from risingstars.processor.failures import (
    Gone,
    NoScratchSpace,
    Rejected,
    Transient,
    ffmpeg_out_of_space,
    no_space,
)
from risingstars.processor.settings import Settings

log = logging.getLogger("risingstars.processor.pipeline")

_CHUNK = 1024 * 1024
_SOURCE_ETAG = "source-etag"
_DURATION = "duration-seconds"


@dataclasses.dataclass(frozen=True)
class Result:
    event: Processed
    reused: bool


def _storage_error(exc: Exception, what: str) -> Transient:
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "?")
        return Transient(f"storage error while {what}: {code}")
    return Transient(f"storage error while {what}: {type(exc).__name__}")


def _source_missing() -> Gone:
    # S3 is read-after-write consistent: an original that is not there was deleted (with its
    # video), so no retry can find it.
    return Gone(Reason.SOURCE_MISSING, "the original is not in the bucket")


def _processed(job: Job, duration: float, size: int) -> Processed:
    return Processed(
        video_id=job.video_id,
        processed_key=job.processed_key,
        thumbnail_key=job.thumbnail_key,
        duration_seconds=round(duration, 3),
        size_bytes=size,
    )


def _not_found(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}


class Pipeline:
    def __init__(self, settings: Settings, s3: Any, ffmpeg: str) -> None:
        self.settings = settings
        self.s3 = s3
        self.ffmpeg = ffmpeg
        self.bucket = settings.s3_bucket

    async def run(self, job: Job) -> Result:
        etag, size = await self._source(job)
        if size > self.settings.max_source_bytes:
            raise Rejected(
                Reason.NOT_A_VIDEO,
                f"{size} bytes, above MAX_SOURCE_BYTES ({self.settings.max_source_bytes})",
            )
        existing = await self._existing(job, etag)
        if existing is not None:
            return Result(existing, reused=True)
        try:
            workdir = scratch.job_dir(self.settings.work_dir)
            try:
                return Result(await self._make(job, etag, size, workdir), reused=False)
            finally:
                await asyncio.to_thread(scratch.remove, workdir)
        except OSError as exc:
            if no_space(exc):
                raise NoScratchSpace("no space left in WORK_DIR") from exc
            raise

    async def _source(self, job: Job) -> tuple[str, int]:
        try:
            head = await self.s3.head_object(Bucket=self.bucket, Key=job.source_key)
        except ClientError as exc:
            # Not the video's fault (so not rejected), and nothing a retry can fix; unless
            # the bucket itself is missing (a HEAD's 404 does not say which), a fault of ours.
            if _not_found(exc):
                await self._bucket_exists()
                raise _source_missing() from exc
            raise _storage_error(exc, "reading the original") from exc
        except BotoCoreError as exc:
            raise _storage_error(exc, "reading the original") from exc
        return head["ETag"].strip('"'), int(head["ContentLength"])

    async def _bucket_exists(self) -> None:
        try:
            await self.s3.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError) as exc:
            raise _storage_error(exc, "looking for the bucket") from exc

    async def _existing(self, job: Job, etag: str) -> Processed | None:
        try:
            head = await self.s3.head_object(Bucket=self.bucket, Key=job.processed_key)
        except ClientError as exc:
            if _not_found(exc):
                return None
            raise _storage_error(exc, "looking for the output") from exc
        except BotoCoreError as exc:
            raise _storage_error(exc, "looking for the output") from exc
        meta = head.get("Metadata", {})
        if meta.get(_SOURCE_ETAG) != etag:
            return None
        try:
            duration = float(meta[_DURATION])
        except (KeyError, ValueError):
            return None
        return _processed(job, duration, int(head["ContentLength"]))

    async def _make(self, job: Job, etag: str, size: int, workdir: Path) -> Processed:
        source = workdir / "source.mp4"
        clock = time.monotonic()
        await self._download(job, etag, size, source)
        download_s = time.monotonic() - clock
        limit = self.settings.ffmpeg_timeout_seconds
        video, thumbnail = workdir / "processed.mp4", workdir / "thumbnail.jpg"
        command = media.encode_command(
            self.ffmpeg, source, video, thumbnail, media.Encoding.of(self.settings)
        )
        # The encoder needs nothing from the probe, so both start at once: the probe only
        # decides whether the input is a video at all, and stops the encoder when it is not.
        started = time.monotonic()
        encoding = asyncio.create_task(media.run(command, time_limit=limit))
        try:
            info = await media.probe(self.ffmpeg, source, time_limit=limit)
            media.check_cost(
                info,
                max_pixels=self.settings.max_picture_pixels,
                max_frame_rate=self.settings.max_frame_rate,
            )
        except BaseException:
            encoding.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await encoding
            raise
        result = await encoding
        elapsed = time.monotonic() - started
        if result.returncode != 0:
            if ffmpeg_out_of_space(result.stderr_tail):
                raise NoScratchSpace("no space left in WORK_DIR while encoding")
            raise media.describe_failure(result, "encoding", video_id=job.video_id)
        if video.stat().st_size >= self.settings.max_output_bytes:
            # ffmpeg stopped writing at the limit (-fs): the picture itself is that costly.
            raise Rejected(
                Reason.OUTPUT_TOO_LARGE,
                f"the output reached MAX_OUTPUT_BYTES ({self.settings.max_output_bytes})",
            )
        try:
            output = await media.probe(self.ffmpeg, video, time_limit=limit)
        except Rejected as exc:  # our own output: not the video's fault
            raise Transient(f"ffmpeg's output is not valid: {exc.detail}") from exc
        if not _nonempty(thumbnail):
            raise Transient("ffmpeg made no thumbnail")
        duration = output.duration or 0.0
        metrics.FFMPEG_SECONDS.observe(elapsed)
        if elapsed > 0 and duration > 0:
            metrics.REALTIME_FACTOR.observe(duration / elapsed)
        log.info(
            "encoded",
            extra={
                "video_id": job.video_id,
                "source_bytes": size,
                "source_size": f"{info.width}x{info.height}",
                "source_seconds": info.duration,
                "output_seconds": duration,
                "ffmpeg_seconds": round(elapsed, 3),
            },
        )
        meta = {_SOURCE_ETAG: etag, _DURATION: f"{duration:.3f}"}
        clock = time.monotonic()
        await self._upload(thumbnail, job.thumbnail_key, "image/jpeg", meta)
        size_bytes = await self._upload(video, job.processed_key, "video/mp4", meta)
        log.info(
            "stored",
            extra={
                "video_id": job.video_id,
                "download_s": round(download_s, 3),
                "upload_s": round(time.monotonic() - clock, 3),
                "output_bytes": size_bytes,
            },
        )
        return _processed(job, duration, size_bytes)

    async def _download(self, job: Job, etag: str, size: int, path: Path) -> None:
        received = 0
        try:
            # IfMatch: the bytes encoded are the ones whose ETag the outputs will carry.
            response = await self.s3.get_object(
                Bucket=self.bucket, Key=job.source_key, IfMatch=f'"{etag}"'
            )
            file = await asyncio.to_thread(path.open, "wb")
            try:
                async with response["Body"] as body:
                    while chunk := await body.read(_CHUNK):
                        await asyncio.to_thread(file.write, chunk)
                        received += len(chunk)
            finally:
                await asyncio.to_thread(file.close)
        except ClientError as exc:
            if _not_found(exc):
                raise _source_missing() from exc
            raise _storage_error(exc, "downloading the original") from exc
        except (BotoCoreError, aiohttp.ClientError, OSError, asyncio.IncompleteReadError) as exc:
            if no_space(exc):  # our disk, not the storage
                raise NoScratchSpace("no space left in WORK_DIR for the original") from exc
            raise _storage_error(exc, "downloading the original") from exc
        if received != size:
            raise Transient(f"incomplete download of the original: {received} of {size} bytes")

    async def _upload(self, path: Path, key: str, content_type: str, meta: dict[str, str]) -> int:
        """The file is streamed from disk (the SDK reads it in chunks), never held whole."""
        try:
            with path.open("rb") as file:
                size = os.fstat(file.fileno()).st_size
                await self.s3.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=file,
                    ContentLength=size,
                    ContentType=content_type,
                    Metadata=meta,
                )
        except (ClientError, BotoCoreError, aiohttp.ClientError, OSError) as exc:
            raise _storage_error(exc, "storing the output") from exc
        return size


def _nonempty(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 0
