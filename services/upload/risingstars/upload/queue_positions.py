"""Where a waiting video stands in the processing queue, and about when it will be ready.

Clients poll a video every few seconds while it waits, so nothing here costs a request a query:
each API replica keeps a snapshot of the queue, refreshed every QUEUE_REFRESH_SECONDS by one
background task (one SQL query and one SQS call per refresh, whatever the traffic), and a
request finds its video's place in it by bisection on the upload time of the video's row, which
it reads anyway. That row also says whether the video still waits: one processed since the last
refresh answers `queue: null` at once; the positions of the others lag by at most one refresh.

- position: the videos waiting ahead of this one, in the order their jobs were queued (the
  upload's time, the job being sent right after its commit): 0 is being processed or next. A
  video newer than the snapshot is behind everything in it.
- eta_seconds: (position + 1) × S ÷ P, where S is the mean service time of the newest
  QUEUE_SERVICE_WINDOW jobs that ended, processed, failed or rejected alike (what the processor
  measured, `service_seconds` in its events: a failure kept a processor busy too) and P the jobs
  being processed now (the jobs queue's in-flight messages; at least 1: a backlog with no processor
  yet is about to get one from the autoscaler). With P jobs always running and finishing one every
  S ÷ P seconds on average, a video with n ahead starts after n - P + 1 of them finish and then
  takes S: (n + 1) × S ÷ P. For the P videos being processed it gives S ÷ P to S, on average
  about S ÷ 2, the expected rest of a job half done. Unknown (null) until a finished job has
  reported its service time.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime
import logging
import math
from typing import Any

import asyncpg

from risingstars.upload import queries

log = logging.getLogger("risingstars.upload.queue_positions")

WAITING = frozenset({"uploaded", "processing"})
# A snapshot holds at most this many waiting videos (an integer each); a video behind them is
# told it has at least this many ahead.
MAX_TRACKED = 50_000
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_MICROSECOND = datetime.timedelta(microseconds=1)


def micros(moment: datetime.datetime) -> int:
    """A timestamp as the whole microseconds since the epoch, exactly as QUEUE_STATE gives it."""
    return (moment - _EPOCH) // _MICROSECOND


@dataclasses.dataclass(frozen=True)
class Snapshot:
    # When each waiting video was queued (`micros`), oldest first: a video's position is the
    # number queued before it, found by bisection.
    queued: list[int]
    mean_service_seconds: float | None
    in_flight: int

    def place(self, uploaded_at: datetime.datetime) -> dict[str, int | None]:
        position = bisect.bisect_left(self.queued, micros(uploaded_at))
        eta = None
        if self.mean_service_seconds is not None:
            processors = max(1, self.in_flight)
            eta = math.ceil((position + 1) * self.mean_service_seconds / processors)
        return {"position": position, "eta_seconds": eta}


class QueuePositions:
    """The API replica's snapshot of the processing queue: `refresh` (periodic) rereads it,
    `place` answers a video's position and ETA from it."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        sqs: Any,
        *,
        jobs_queue_url: str,
        refresh_seconds: float = 5.0,
        service_window: int = 20,
    ) -> None:
        self.pool = pool
        self.sqs = sqs
        self.queue_url = jobs_queue_url
        self.refresh_seconds = refresh_seconds
        self.service_window = service_window
        self.snapshot: Snapshot | None = None
        self.refreshes = 0

    def place(self, status: str, uploaded_at: datetime.datetime) -> dict[str, int | None] | None:
        """The `queue` field of a video (its row's status and upload time): None once it no
        longer waits."""
        if status not in WAITING:
            return None
        if self.snapshot is None:  # not read yet (the database was down since start-up)
            return {"position": None, "eta_seconds": None}
        return self.snapshot.place(uploaded_at)

    async def refresh(self) -> Snapshot:
        row = await self.pool.fetchrow(queries.QUEUE_STATE, MAX_TRACKED, self.service_window)
        in_flight = await self._in_flight()
        mean = row["mean_service_seconds"]
        self.snapshot = Snapshot(
            queued=row["waiting"],
            mean_service_seconds=None if mean is None else float(mean),
            in_flight=in_flight,
        )
        self.refreshes += 1
        return self.snapshot

    async def _in_flight(self) -> int:
        """The jobs being processed; the last known count when SQS does not answer."""
        try:
            response = await self.sqs.get_queue_attributes(
                QueueUrl=self.queue_url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
            )
            return int(response["Attributes"]["ApproximateNumberOfMessagesNotVisible"])
        except Exception as exc:
            log.warning("jobs in flight unknown", extra={"error": repr(exc)})
            return self.snapshot.in_flight if self.snapshot is not None else 0
