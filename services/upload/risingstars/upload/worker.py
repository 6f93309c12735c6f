"""`python -m risingstars.upload worker`: the queue work, apart from the API replicas so each
scales on its own signal, each task a kit.periodic."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from risingstars.kit import periodic
from risingstars.kit.app import create_app as kit_create_app
from risingstars.upload import resources, tus
from risingstars.upload.cleanup import Sweeper
from risingstars.upload.events import EventsConsumer
from risingstars.upload.queue_gauges import QueueGauges
from risingstars.upload.settings import Settings

log = logging.getLogger("risingstars.upload.worker")

SERVICE = "upload-worker"


@dataclasses.dataclass(frozen=True)
class Worker:
    sweeper: Sweeper
    tasks: tuple[periodic.Periodic, ...]


def build(settings: Settings, clients: resources.Clients) -> Worker:
    outbox = resources.outbox(settings, clients)
    events = EventsConsumer(
        clients,
        bucket=settings.s3_bucket,
        queue_url=settings.events_queue_url,
        wait_seconds=settings.events_wait_seconds,
        jobs_queue_url=settings.jobs_queue_url,
    )
    sweeper = Sweeper(
        clients, bucket=settings.s3_bucket, max_age_seconds=settings.direct_upload_ttl_seconds
    )
    gauges = QueueGauges(clients.pool, clients.sqs, jobs_queue_url=settings.jobs_queue_url)

    async def expire_tus() -> None:
        removed = await tus.expire(clients.pool, clients.s3, settings.s3_bucket)
        if removed:
            log.info("expired tus uploads removed", extra={"count": removed})

    sweep_every = settings.cleanup_interval_seconds
    # Replicas started together do not sweep in lockstep (a random first delay).
    first_sweep = min(sweep_every, 60)
    tasks = (
        # The events poll is itself the wait (a long poll).
        periodic.Periodic(
            "outbox",
            outbox.relay_pass,
            settings.outbox_poll_seconds,
            # A failed pass (the database away) is retried soon: deferred jobs wait on it.
            max_backoff=5.0,
        ),
        periodic.Periodic("events", events.poll_pass, 0),
        periodic.Periodic("cleanup", sweeper.sweep, sweep_every, first_delay=first_sweep),
        periodic.Periodic("tus-expiry", expire_tus, sweep_every, first_delay=first_sweep),
        periodic.Periodic("queue-gauges", gauges.refresh, settings.queue_refresh_seconds),
    )
    return Worker(sweeper, tasks)


def create_worker(settings: Settings) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            clients = await resources.open_clients(stack, settings)
            worker = build(settings, clients)
            app.state.worker = worker
            resources.add_checks(app.state.lifecycle, settings, clients)
            async with periodic.running(*worker.tasks):
                yield

    app = kit_create_app(SERVICE, lifespan=lifespan)
    app.state.settings = settings
    return app
