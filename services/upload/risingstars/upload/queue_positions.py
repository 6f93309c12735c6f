"""Where a waiting video stands in the processing queue, and about when it will be ready. No
request costs a query: each replica keeps a snapshot of the queue (refreshed every
QUEUE_REFRESH_SECONDS), bisected with the upload time of the video's row, read anyway.

- position: the videos queued before this one (0: being processed or next).
- eta_seconds: (position + 1) × S ÷ P, S the mean service time of the newest
  QUEUE_SERVICE_WINDOW jobs that ended (failures too), P the jobs in flight (at least 1): with
  P running, one ends every S ÷ P seconds, so a video with n ahead starts after n - P + 1 and
  takes S. Null until a job has reported its service time."""

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
    # When each waiting video was queued (`micros`), oldest first.
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
    def __init__(
        self,
        pool: asyncpg.Pool,
        sqs: Any,
        *,
        jobs_queue_url: str,
        service_window: int = 20,
    ) -> None:
        self.pool = pool
        self.sqs = sqs
        self.queue_url = jobs_queue_url
        self.service_window = service_window
        self.snapshot: Snapshot | None = None
        self.refreshes = 0

    def place(self, status: str, uploaded_at: datetime.datetime) -> dict[str, int | None] | None:
        """A video's `queue` field: None once it no longer waits."""
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
        try:
            response = await self.sqs.get_queue_attributes(
                QueueUrl=self.queue_url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
            )
            return int(response["Attributes"]["ApproximateNumberOfMessagesNotVisible"])
        except Exception as exc:
            log.warning("jobs in flight unknown", extra={"error": repr(exc)})
            return self.snapshot.in_flight if self.snapshot is not None else 0
