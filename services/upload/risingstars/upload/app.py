"""The upload service's application: its resources, background loops and routes."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiobotocore.config import AioConfig
from botocore.exceptions import BotoCoreError, ClientError
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from risingstars.kit import aws, db, errors
from risingstars.kit.app import create_app as kit_create_app
from risingstars.kit.tokens import TokenVerifier
from risingstars.upload import catalog, messages, metrics, storage, tus
from risingstars.upload.cleanup import Sweeper
from risingstars.upload.events import EventsConsumer
from risingstars.upload.outbox import Outbox
from risingstars.upload.rankings import Rankings
from risingstars.upload.routes import public, uploads, videos
from risingstars.upload.routes import tus as tus_routes
from risingstars.upload.runtime import Runtime
from risingstars.upload.s3upload import BufferPool
from risingstars.upload.settings import Settings

log = logging.getLogger("risingstars.upload")

SERVICE = "upload"
STREAM_PATH = "/api/videos/upload"
JSON_BODY_LIMIT = 64 * 1024


class _StreamOnlyExemption:
    """The kit exempts the streaming upload from its JSON body limit by path prefix, which also
    covers /api/videos/uploads...; those JSON endpoints get the limit back here."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.limited = errors.BodyLimitMiddleware(app, limit=JSON_BODY_LIMIT)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(STREAM_PATH + "s"):
            await self.limited(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def _s3_config(settings: Settings) -> Any:
    # Every part in flight needs a connection; SigV4 presigned URLs work in every region.
    return aws.client_config(
        max_pool_connections=max(50, settings.buffer_count * 2), signature_version="s3v4"
    )


def _sqs_config() -> Any:
    # The outbox relay and the events loop retry on their own schedule: fail fast here.
    return aws.client_config().merge(
        AioConfig(retries={"mode": "standard", "max_attempts": 2}, connect_timeout=2)
    )


async def _supervise(name: str, loop: Any) -> None:
    """Keep a background loop alive: log and restart it if it ever crashes."""
    while True:
        try:
            await loop()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("background task crashed, restarting", extra={"task": name})
            await asyncio.sleep(1)


# Faults of S3 that no handler dealt with: 503 (retry later), not a bare 500.
STORAGE_FAULTS = (BotoCoreError, ClientError)


def create_app(settings: Settings, *, verifier: TokenVerifier | None = None) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        token_verifier = verifier or TokenVerifier(
            issuer=settings.jwt_issuer, audience=settings.jwt_audience, jwks_url=settings.jwks_url
        )
        app.state.verifier = token_verifier
        with contextlib.suppress(Exception):
            # Not fatal: readiness reports missing keys, and verification refetches them.
            await token_verifier.refresh(force=True)
        async with contextlib.AsyncExitStack() as stack:
            pool = await db.create_pool(settings.database_url, max_size=settings.db_pool_size)
            stack.push_async_callback(pool.close)
            s3 = await stack.enter_async_context(aws.client("s3", settings, _s3_config(settings)))
            sqs = await stack.enter_async_context(
                aws.client("sqs", settings.sqs_settings(), _sqs_config())
            )
            buffers = BufferPool(settings.upload_part_bytes, settings.buffer_count)
            runtime = Runtime(
                settings=settings,
                pool=pool,
                s3=s3,
                sqs=sqs,
                buffers=buffers,
                links=storage.Links(
                    s3,
                    settings.s3_bucket,
                    ttl_seconds=settings.presign_ttl_seconds,
                    public_base_url=settings.public_base_url,
                ),
                outbox=Outbox(
                    pool,
                    sqs,
                    s3,
                    bucket=settings.s3_bucket,
                    jobs_queue_url=settings.jobs_queue_url,
                    poll_seconds=settings.outbox_poll_seconds,
                    max_backoff_seconds=settings.outbox_max_backoff_seconds,
                ),
                rankings=Rankings(pool, settings.rankings_cache_seconds),
                sweeper=Sweeper(
                    pool,
                    s3,
                    bucket=settings.s3_bucket,
                    max_age_seconds=settings.direct_upload_ttl_seconds,
                    interval_seconds=settings.cleanup_interval_seconds,
                ),
                events=EventsConsumer(
                    pool,
                    sqs,
                    s3,
                    bucket=settings.s3_bucket,
                    queue_url=settings.events_queue_url,
                    wait_seconds=settings.events_wait_seconds,
                ),
            )
            runtime.tus = tus.TusUploads(
                pool=pool,
                s3=s3,
                bucket=settings.s3_bucket,
                buffers=buffers,
                limits=runtime.limits,
                ttl_seconds=settings.direct_upload_ttl_seconds,
                max_open_per_user=settings.max_open_uploads_per_user,
                record=lambda conn, video_id, owner, title, size, info: catalog.record(
                    conn,
                    runtime,
                    video_id,
                    catalog.Uploader(*dataclasses.astuple(owner)),
                    title,
                    size,
                    info,
                ),
                deliver=lambda delivery: catalog.deliver(runtime, delivery),
            )
            app.state.runtime = runtime
            metrics.BUFFERS_IN_USE.set_function(lambda: buffers.in_use)

            lifecycle = app.state.lifecycle
            lifecycle.add_check("database", lambda: db.ping(pool))
            lifecycle.add_check("s3", lambda: storage.bucket_reachable(s3, settings.s3_bucket))
            lifecycle.add_check("jwks", token_verifier.ensure_keys)

            interval = settings.cleanup_interval_seconds
            tasks = [
                asyncio.create_task(_supervise(name, loop), name=f"upload-{name}")
                for name, loop in (
                    ("outbox", runtime.outbox.run),
                    ("events", runtime.events.run),
                    ("cleanup", runtime.sweeper.run),
                    ("tus-expiry", functools.partial(tus.expire_forever, runtime.tus, interval)),
                )
            ]
            try:
                yield
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    app = kit_create_app(
        SERVICE,
        lifespan=lifespan,
        max_body_bytes=JSON_BODY_LIMIT,
        body_limit_exempt=(STREAM_PATH, tus_routes.PATH),
    )
    app.add_middleware(_StreamOnlyExemption)
    for fault in db.UNAVAILABLE:
        app.add_exception_handler(fault, errors.unavailable(messages.DATABASE_DOWN))
    for fault in STORAGE_FAULTS:
        app.add_exception_handler(fault, errors.unavailable(messages.STORAGE_DOWN))
    app.state.settings = settings
    # The public routes take the most traffic: matched first.
    app.include_router(public.router)
    app.include_router(videos.router)
    app.include_router(uploads.router)
    app.include_router(tus_routes.router)
    return app
