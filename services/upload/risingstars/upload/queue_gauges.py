"""The jobs queue as an operator sees it, exported by the upload worker (which polls SQS anyway),
so the queue alerts need no CloudWatch exporter: the messages waiting and in flight, the
dead-letter queue's depth, and how long the oldest unfinished video has waited (from the
database: SQS's own age of the oldest message is a CloudWatch figure, not a queue attribute)."""

from __future__ import annotations

from typing import Any

import asyncpg

from risingstars.kit.aws import dead_letter_url
from risingstars.upload import metrics, queries

_DEPTH = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]


async def _depth(sqs: Any, queue_url: str) -> tuple[int, int]:
    attributes = (await sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=_DEPTH))[
        "Attributes"
    ]
    return int(attributes[_DEPTH[0]]), int(attributes[_DEPTH[1]])


class QueueGauges:
    def __init__(self, pool: asyncpg.Pool, sqs: Any, *, jobs_queue_url: str) -> None:
        self.pool, self.sqs = pool, sqs
        self.queue_url = jobs_queue_url
        self._dead_letters: str | None = None

    async def refresh(self) -> None:
        """One reading of every gauge (periodic); a gauge keeps its last value on a failure."""
        visible, in_flight = await _depth(self.sqs, self.queue_url)
        metrics.JOBS_QUEUE.labels("visible").set(visible)
        metrics.JOBS_QUEUE.labels("in_flight").set(in_flight)
        metrics.OLDEST_WAITING.set(await self.pool.fetchval(queries.OLDEST_WAITING_SECONDS))
        if self._dead_letters is None:
            self._dead_letters = await dead_letter_url(self.sqs, self.queue_url)
        if self._dead_letters:
            # The events consumer hides the dead letters it has applied: both counts are depth.
            metrics.DEAD_LETTERS.set(sum(await _depth(self.sqs, self._dead_letters)))
