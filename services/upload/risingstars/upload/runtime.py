"""The resources the API's requests work with, opened by the app's lifespan (app.state.runtime).
Routes take from it what each domain function needs; domain code never sees it."""

from __future__ import annotations

import dataclasses
from typing import Any

import asyncpg

from risingstars.upload import storage
from risingstars.upload.capacity import UserSlots
from risingstars.upload.direct import DirectUploads
from risingstars.upload.ingest import Limits, Pace
from risingstars.upload.outbox import Outbox
from risingstars.upload.queue_positions import QueuePositions
from risingstars.upload.rankings import Rankings
from risingstars.upload.settings import Settings
from risingstars.upload.spill import PartStore
from risingstars.upload.tus import TusUploads


@dataclasses.dataclass
class Runtime:
    settings: Settings
    pool: asyncpg.Pool
    s3: Any
    buffers: PartStore
    links: storage.Links
    outbox: Outbox
    rankings: Rankings
    direct: DirectUploads
    tus: TusUploads
    upload_slots: UserSlots
    queue: QueuePositions

    @property
    def limits(self) -> Limits:
        return limits(self.settings)

    @property
    def pace(self) -> Pace:
        return Pace(self.settings.upload_idle_seconds, self.settings.upload_deadline_seconds)


def limits(s: Settings) -> Limits:
    return Limits(
        max_bytes=s.max_upload_bytes,
        min_duration=s.min_duration_seconds,
        max_duration=s.max_duration_seconds,
        min_short_side=s.min_short_side_px,
        max_moov_bytes=s.max_moov_bytes,
    )
