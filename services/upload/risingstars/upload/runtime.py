"""What the API's requests work with, opened by the app's lifespan (app.state.runtime)."""

from __future__ import annotations

import dataclasses
from typing import Any

import asyncpg

from risingstars.upload import storage
from risingstars.upload.direct import DirectUploads
from risingstars.upload.outbox import Outbox
from risingstars.upload.queue_positions import QueuePositions
from risingstars.upload.rankings import Rankings
from risingstars.upload.settings import Settings
from risingstars.upload.spill import PartStore
from risingstars.upload.streamed import StreamedUploads
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
    streamed: StreamedUploads
    direct: DirectUploads
    tus: TusUploads
    queue: QueuePositions
