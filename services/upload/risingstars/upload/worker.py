"""`python -m risingstars.upload worker`: the upload service's queue work, apart from the API
replicas so each side scales on its own signal: the outbox relay (jobs to SQS, stored objects to
delete), the processor's events, the sweep of abandoned multipart uploads and the expiry of tus
uploads. Same lifecycle as
every service (/healthz, /readyz, /metrics on PORT, graceful shutdown)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import FastAPI

from risingstars.kit.app import create_app as kit_create_app
from risingstars.upload import resources, tus
from risingstars.upload.cleanup import Sweeper
from risingstars.upload.events import EventsConsumer
from risingstars.upload.outbox import Outbox
from risingstars.upload.settings import Settings

log = logging.getLogger("risingstars.upload.worker")

SERVICE = "upload-worker"


@dataclasses.dataclass(frozen=True)
class Worker:
    outbox: Outbox
    events: EventsConsumer
    sweeper: Sweeper


async def supervise(name: str, loop: Callable[[], Awaitable[None]]) -> None:
    """Keep a background loop alive: log and restart it if it ever crashes."""
    while True:
        try:
            await loop()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("background task crashed, restarting", extra={"task": name})
            await asyncio.sleep(1)


def create_worker(settings: Settings) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            clients = await resources.open_clients(stack, settings)
            box = resources.outbox(settings, clients)
            worker = Worker(
                outbox=box,
                events=EventsConsumer(
                    clients,
                    bucket=settings.s3_bucket,
                    queue_url=settings.events_queue_url,
                    wait_seconds=settings.events_wait_seconds,
                    jobs_queue_url=settings.jobs_queue_url,
                ),
                sweeper=Sweeper(
                    clients,
                    bucket=settings.s3_bucket,
                    max_age_seconds=settings.direct_upload_ttl_seconds,
                    interval_seconds=settings.cleanup_interval_seconds,
                ),
            )
            app.state.worker = worker
            resources.add_checks(app.state.lifecycle, settings, clients)
            tasks = [
                asyncio.create_task(supervise(name, loop), name=f"upload-{name}")
                for name, loop in (
                    ("outbox", worker.outbox.run),
                    ("events", worker.events.run),
                    ("cleanup", worker.sweeper.run),
                    ("tus-expiry", functools.partial(tus.expire_forever, clients, settings)),
                )
            ]
            try:
                yield
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    app = kit_create_app(SERVICE, lifespan=lifespan)
    app.state.settings = settings
    return app
