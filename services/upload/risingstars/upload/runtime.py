"""The resources a request works with, opened by the app's lifespan (app.state.runtime)."""

from __future__ import annotations

import dataclasses
from typing import Any

import asyncpg

from risingstars.upload import storage
from risingstars.upload.cleanup import Sweeper
from risingstars.upload.events import EventsConsumer
from risingstars.upload.ingest import Limits
from risingstars.upload.outbox import Outbox
from risingstars.upload.rankings import Rankings
from risingstars.upload.s3upload import BufferPool
from risingstars.upload.settings import Settings


@dataclasses.dataclass
class Runtime:
    settings: Settings
    pool: asyncpg.Pool
    s3: Any
    sqs: Any
    buffers: BufferPool
    links: storage.Links
    outbox: Outbox
    rankings: Rankings
    sweeper: Sweeper
    events: EventsConsumer
    # Set once the rest exists (it records videos through catalog, which takes the runtime).
    tus: Any = None

    @property
    def limits(self) -> Limits:
        s = self.settings
        return Limits(
            max_bytes=s.max_upload_bytes,
            min_duration=s.min_duration_seconds,
            max_duration=s.max_duration_seconds,
            min_short_side=s.min_short_side_px,
            max_moov_bytes=s.max_moov_bytes,
        )
