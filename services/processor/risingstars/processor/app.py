"""The processor's process: the SQS worker, plus a small HTTP app for probes and metrics.

The worker runs inside the app's lifespan, so a SIGTERM (kit.serve) first fails readiness and
stops receiving, then the lifespan's end gives running jobs the rest of their grace period.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from risingstars.kit import app as kit_app
from risingstars.kit import aws
from risingstars.processor import media, metrics
from risingstars.processor.settings import Settings
from risingstars.processor.worker import Worker

log = logging.getLogger("risingstars.processor")


def create_app(settings: Settings) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ffmpeg = media.locate_ffmpeg(settings.ffmpeg_path)
        log.info("ffmpeg", extra={"path": ffmpeg, "version": await media.version(ffmpeg)})
        s3_settings = dataclasses.replace(
            settings, aws_endpoint_url=settings.aws_endpoint_url_s3 or settings.aws_endpoint_url
        )
        async with (
            aws.client("s3", s3_settings) as s3,
            aws.client("sqs", settings) as sqs,
        ):
            worker = Worker(settings, sqs=sqs, s3=s3, ffmpeg=ffmpeg, lifecycle=app.state.lifecycle)
            app.state.worker = worker
            metrics.WORKERS.set(settings.concurrency)
            app.state.lifecycle.add_check("worker", worker.check)
            await worker.start()
            try:
                yield
            finally:
                await worker.stop()

    return kit_app.create_app("processor", lifespan=lifespan)
