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
import time
from pathlib import Path
from typing import Any

import aiohttp
from botocore.exceptions import BotoCoreError, ClientError

from risingstars.processor import media, messages, metrics, scratch
from risingstars.processor.failures import Rejected, Transient
from risingstars.processor.messages import Job
from risingstars.processor.settings import Settings

log = logging.getLogger("risingstars.processor.pipeline")

_CHUNK = 1024 * 1024
_SOURCE_ETAG = "source-etag"
_DURATION = "duration-seconds"
SOURCE_MISSING = "El video original no existe en el almacenamiento"


@dataclasses.dataclass(frozen=True)
class Result:
    event: dict[str, Any]
    reused: bool


def _storage_error(exc: Exception, what: str) -> Transient:
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "?")
        return Transient(f"Error de almacenamiento al {what}: {code}")
    return Transient(f"Error de almacenamiento al {what}: {type(exc).__name__}")


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
                f"El archivo supera el tamaño máximo de {self.settings.max_source_bytes} bytes"
            )
        existing = await self._existing(job, etag)
        if existing is not None:
            return Result(existing, reused=True)
        workdir = scratch.job_dir(self.settings.work_dir)
        try:
            return Result(await self._make(job, etag, size, workdir), reused=False)
        finally:
            await asyncio.to_thread(scratch.remove, workdir)

    async def _source(self, job: Job) -> tuple[str, int]:
        try:
            head = await self.s3.head_object(Bucket=self.bucket, Key=job.source_key)
        except ClientError as exc:
            # Only the video's bytes may reject it: a missing original is retried (and ends
            # as failed), never blamed on the video.
            if _not_found(exc):
                raise Transient(SOURCE_MISSING) from exc
            raise _storage_error(exc, "leer el original") from exc
        except BotoCoreError as exc:
            raise _storage_error(exc, "leer el original") from exc
        return head["ETag"].strip('"'), int(head["ContentLength"])

    async def _existing(self, job: Job, etag: str) -> dict[str, Any] | None:
        try:
            head = await self.s3.head_object(Bucket=self.bucket, Key=job.processed_key)
        except ClientError as exc:
            if _not_found(exc):
                return None
            raise _storage_error(exc, "consultar la salida") from exc
        except BotoCoreError as exc:
            raise _storage_error(exc, "consultar la salida") from exc
        meta = head.get("Metadata", {})
        if meta.get(_SOURCE_ETAG) != etag:
            return None
        try:
            duration = float(meta[_DURATION])
        except (KeyError, ValueError):
            return None
        return messages.processed(
            job, duration_seconds=duration, size_bytes=int(head["ContentLength"])
        )

    async def _make(self, job: Job, etag: str, size: int, workdir: Path) -> dict[str, Any]:
        source = workdir / "source.mp4"
        clock = time.monotonic()
        await self._download(job, etag, size, source)
        download_s = time.monotonic() - clock
        limit = self.settings.ffmpeg_timeout_seconds
        video, thumbnail = workdir / "processed.mp4", workdir / "thumbnail.jpg"
        command = media.encode_command(
            self.ffmpeg,
            source,
            video,
            thumbnail,
            card=self.settings.logo_card_path,
            watermark=self.settings.watermark_path,
            thumbnail_at=self.settings.thumbnail_seconds,
            preset=self.settings.ffmpeg_preset,
            crf=self.settings.ffmpeg_crf,
            scaler=self.settings.ffmpeg_scaler,
        )
        # The encoder needs nothing from the probe, so both start at once: the probe only
        # decides whether the input is a video at all, and stops the encoder when it is not.
        started = time.monotonic()
        encoding = asyncio.create_task(media.run(command, time_limit=limit))
        try:
            info = await media.probe(self.ffmpeg, source, time_limit=limit)
        except BaseException:
            encoding.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await encoding
            raise
        result = await encoding
        elapsed = time.monotonic() - started
        if result.returncode != 0:
            raise media.describe_failure(result, "codificar")
        try:
            output = await media.probe(self.ffmpeg, video, time_limit=limit)
        except Rejected as exc:  # our own output: not the video's fault
            raise Transient(f"La salida de ffmpeg no es válida: {exc.reason}") from exc
        if not _nonempty(thumbnail):
            raise Transient("ffmpeg no produjo la miniatura")
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
        return messages.processed(job, duration_seconds=duration, size_bytes=size_bytes)

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
                raise Transient(SOURCE_MISSING) from exc
            raise _storage_error(exc, "descargar el original") from exc
        except (BotoCoreError, aiohttp.ClientError, OSError, asyncio.IncompleteReadError) as exc:
            raise _storage_error(exc, "descargar el original") from exc
        if received != size:
            raise Transient(f"Descarga incompleta del original: {received} de {size} bytes")

    async def _upload(self, path: Path, key: str, content_type: str, meta: dict[str, str]) -> int:
        data = await asyncio.to_thread(path.read_bytes)
        try:
            await self.s3.put_object(
                Bucket=self.bucket, Key=key, Body=data, ContentType=content_type, Metadata=meta
            )
        except (ClientError, BotoCoreError) as exc:
            raise _storage_error(exc, "guardar la salida") from exc
        return len(data)


def _nonempty(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 0
