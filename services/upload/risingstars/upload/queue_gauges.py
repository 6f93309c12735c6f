"""The jobs queue's gauges, exported by the worker so the queue alerts need no CloudWatch
exporter; the oldest wait comes from the database (SQS's is a CloudWatch figure only)."""

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
        visible, in_flight = await _depth(self.sqs, self.queue_url)
        metrics.JOBS_QUEUE.labels("visible").set(visible)
        metrics.JOBS_QUEUE.labels("in_flight").set(in_flight)
        metrics.OLDEST_WAITING.set(await self.pool.fetchval(queries.OLDEST_WAITING_SECONDS))
        if self._dead_letters is None:
            self._dead_letters = await dead_letter_url(self.sqs, self.queue_url)
        if self._dead_letters:
            # The events consumer hides the dead letters it has applied: both counts are depth.
            metrics.DEAD_LETTERS.set(sum(await _depth(self.sqs, self._dead_letters)))
