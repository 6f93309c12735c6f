"""The upload service's API. The queue work runs in the worker (`worker.py`); a request still
sends its job right after the commit, and the worker's relay sends what that could not."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from risingstars.kit import db, errors, periodic
from risingstars.kit.app import create_app as kit_create_app
from risingstars.kit.tokens import TokenVerifier
from risingstars.upload import apidocs, messages, metrics, resources, storage
from risingstars.upload.capacity import UserSlots
from risingstars.upload.direct import DirectUploads
from risingstars.upload.intake import Intake, UploadPolicy
from risingstars.upload.queue_positions import QueuePositions
from risingstars.upload.rankings import Rankings
from risingstars.upload.routes import public, uploads, videos
from risingstars.upload.routes import tus as tus_routes
from risingstars.upload.runtime import Runtime
from risingstars.upload.settings import Settings
from risingstars.upload.spill import PartStore
from risingstars.upload.streamed import StreamedUploads
from risingstars.upload.tus import TusUploads

SERVICE = "upload"
STREAM_PATH = "/api/videos/upload"
JSON_BODY_LIMIT = 64 * 1024


def create_app(settings: Settings, *, verifier: TokenVerifier | None = None) -> FastAPI:
    policy = UploadPolicy.from_settings(settings)

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
            clients = await resources.open_clients(stack, settings)
            pool, s3 = clients.pool, clients.s3
            buffers = PartStore(
                settings.upload_part_bytes,
                settings.buffer_count,
                settings.upload_spill_dir,
                settings.upload_spill_bytes,
                admission_wait=settings.upload_admission_wait_seconds,
            )
            stack.callback(buffers.close)
            box = resources.outbox(settings, clients)
            intake = Intake(pool, s3, box, settings.s3_bucket, policy)
            slots = UserSlots(settings.upload_max_per_user)
            runtime = Runtime(
                settings=settings,
                pool=pool,
                s3=s3,
                buffers=buffers,
                links=storage.Links(
                    s3,
                    settings.s3_bucket,
                    ttl_seconds=settings.presign_ttl_seconds,
                    media_base_url=settings.media_base_url,
                ),
                outbox=box,
                rankings=Rankings(pool, settings.rankings_cache_seconds),
                streamed=StreamedUploads(
                    intake,
                    buffers,
                    slots,
                    parts_in_flight=settings.upload_parts_in_flight,
                ),
                direct=DirectUploads(
                    intake,
                    part_bytes=settings.upload_part_bytes,
                    presign_ttl_seconds=settings.presign_ttl_seconds,
                    ttl_seconds=settings.direct_upload_ttl_seconds,
                    complete_timeout_seconds=settings.direct_complete_seconds,
                ),
                tus=TusUploads(
                    intake,
                    buffers,
                    slots,
                    ttl_seconds=settings.direct_upload_ttl_seconds,
                    parts_in_flight=settings.upload_parts_in_flight,
                ),
                queue=QueuePositions(
                    pool,
                    clients.sqs,
                    jobs_queue_url=settings.jobs_queue_url,
                    service_window=settings.queue_service_window,
                ),
            )
            app.state.runtime = runtime
            metrics.BUFFERS_IN_USE.set_function(lambda: buffers.in_use)
            metrics.SPILL_BYTES_IN_USE.set_function(lambda: buffers.spill_in_use)
            metrics.UPLOADS_WAITING.set_function(lambda: buffers.waiting)
            metrics.ADMISSION_WAITING.set_function(lambda: buffers.admitting)
            lifecycle = app.state.lifecycle
            resources.add_checks(lifecycle, settings, clients)
            lifecycle.add_check("jwks", token_verifier.ensure_keys)
            refresher = periodic.Periodic(
                "queue-snapshot", runtime.queue.refresh, settings.queue_refresh_seconds
            )
            async with periodic.running(refresher):
                yield

    app = kit_create_app(
        SERVICE,
        lifespan=lifespan,
        max_body_bytes=JSON_BODY_LIMIT,
        # The routes that read their body as a stream, within limits of their own.
        body_limit_routes=[
            ("POST", STREAM_PATH),
            ("POST", tus_routes.PATH),
            ("POST", tus_routes.PATH + "/"),
            ("PATCH", tus_routes.PATH + "/{upload_id}"),
        ],
    )
    errors.install_unavailable(app, db.UNAVAILABLE, errors.DATABASE_DOWN)
    # Faults of S3 that no handler dealt with: 503 (retry later), not a bare 500.
    errors.install_unavailable(app, storage.STORAGE_ERRORS, messages.STORAGE_DOWN)
    app.state.settings = settings
    # The public routes take the most traffic: matched first.
    app.include_router(public.router)
    app.include_router(videos.router)
    app.include_router(uploads.router)
    app.include_router(tus_routes.router)
    apidocs.install(app)
    return app
