"""The processor's events, long-polled; idempotent and order-tolerant (SQS delivers at least
once, in any order). The processor parses hostile files, so a `processed` event is applied only
when its keys are the outputs the job named for that very video."""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any

import asyncpg

from risingstars import jobs
from risingstars.kit import db, tracing
from risingstars.kit.aws import dead_letter_url
from risingstars.upload import metrics, queries, storage

if TYPE_CHECKING:
    from risingstars.upload.resources import Clients

log = logging.getLogger("risingstars.upload.events")

APPLIED = "applied"
DUPLICATE = "duplicate"
DROPPED = "dropped"
INVALID = "invalid"
REFUSED = "refused"
_SQS_MAX_VISIBILITY = 43200


class EventsConsumer:
    def __init__(
        self,
        clients: Clients,
        *,
        bucket: str,
        queue_url: str,
        wait_seconds: int = 20,
        jobs_queue_url: str | None = None,
    ) -> None:
        self.pool, self.sqs, self.s3 = clients.pool, clients.sqs, clients.s3
        self.bucket = bucket
        self.queue_url = queue_url
        self.wait_seconds = wait_seconds
        self.jobs_queue_url = jobs_queue_url
        self._dead_letters: str | None = None

    async def handle(self, body: str) -> str:
        """Apply one event (JSON text); database faults raise, so the message comes back."""
        try:
            event = jobs.parse_event(body)
        except jobs.InvalidMessage as exc:
            log.warning(
                "malformed event dropped",
                extra={"error": exc.reason, "video_id": exc.video_id, "body": body[:500]},
            )
            metrics.EVENTS.labels("unknown", INVALID).inc()
            return INVALID
        return await self.apply(event)

    async def apply(self, event: jobs.Event) -> str:
        video_id = uuid.UUID(event.video_id)
        tracing.annotate(f"event {event.type}", video_id=event.video_id, event_type=event.type)
        if isinstance(event, jobs.Processed):
            result = await self._processed(video_id, event)
        elif isinstance(event, jobs.Started):
            result = await self._started(video_id)
        else:
            log.info(
                "video not processed",
                extra={
                    "video_id": event.video_id,
                    "kind": event.kind,
                    "reason": str(event.reason),
                    "detail": event.detail,
                },
            )
            result = await self._failed(video_id, event)
            if result == APPLIED:
                metrics.VIDEOS.labels(event.kind, str(event.reason)).inc()
        metrics.EVENTS.labels(event.type, result).inc()
        log.info("event", extra={"type": event.type, "video_id": event.video_id, "result": result})
        return result

    async def _started(self, video_id: uuid.UUID) -> str:
        async with self.pool.acquire() as conn, conn.transaction():
            status = await conn.fetchval(queries.LOCK_STATUS, video_id)
            if status is None:
                return DROPPED
            if status != "uploaded":
                # Already processing (another attempt), or ended: a late start is stale.
                return DUPLICATE
            await conn.execute(queries.MARK_PROCESSING, video_id)
            return APPLIED

    async def _processed(self, video_id: uuid.UUID, event: jobs.Processed) -> str:
        processed, thumbnail = event.processed_key, event.thumbnail_key
        outputs = storage.processed_key(video_id), storage.thumbnail_key(video_id)
        if (processed, thumbnail) != outputs:  # the only keys its job named for this video
            log.warning(
                "processed event refused: its keys are not this video's outputs",
                extra={
                    "video_id": str(video_id),
                    "processed_key": processed[:200],
                    "thumbnail_key": thumbnail[:200],
                },
            )
            return REFUSED
        async with self.pool.acquire() as conn, conn.transaction():
            status = await conn.fetchval(queries.LOCK_STATUS, video_id)
            if status == "processed":
                return DUPLICATE
            if status is not None:
                waited = await conn.fetchval(
                    queries.MARK_PROCESSED, video_id, processed, thumbnail, event.service_seconds
                )
                metrics.VIDEOS.labels("processed", "").inc()
                metrics.TIME_TO_PLAYABLE.observe(max(0.0, float(waited)))
                return APPLIED
        # Deleted while processing: its outputs (checked above to be its own) are removed.
        try:
            await storage.delete_keys(self.s3, self.bucket, [processed, thumbnail])
        except Exception as exc:
            log.warning("could not remove a deleted video's output", extra={"error": repr(exc)})
        return DROPPED

    async def _failed(self, video_id: uuid.UUID, event: jobs.Failed) -> str:
        async with self.pool.acquire() as conn, conn.transaction():
            status = await conn.fetchval(queries.LOCK_STATUS, video_id)
            if status is None:  # deleted meanwhile: nothing to tell anyone
                return DROPPED
            if status in (event.kind, "processed"):
                # A success is final; a late failure report (an earlier attempt) is stale.
                return DUPLICATE
            await conn.execute(
                queries.MARK_FAILED,
                video_id,
                event.kind,
                str(event.reason),
                event.service_seconds,
            )
            return APPLIED

    async def _receive(self, queue_url: str, wait_seconds: int) -> list[dict[str, Any]]:
        response = await self.sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=wait_seconds,
            MessageAttributeNames=tracing.MESSAGE_ATTRIBUTES,
        )
        return response.get("Messages", [])

    async def poll_once(self) -> int:
        messages = await self._receive(self.queue_url, self.wait_seconds)
        for message in messages:
            try:
                with tracing.consumer("event apply", message):
                    await self.handle(message.get("Body", ""))
            except (*db.UNAVAILABLE, asyncpg.PostgresError) as exc:
                log.warning("event not applied, will be redelivered", extra={"error": repr(exc)})
                continue
            await self.sqs.delete_message(
                QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"]
            )
        return len(messages)

    async def poll_dead_letters(self) -> int:
        """A dead-lettered job is applied as `failed` (nobody reported), and hidden for people."""
        if self._dead_letters is None:
            self._dead_letters = await dead_letter_url(self.sqs, self.jobs_queue_url)
        if not self._dead_letters:
            return 0
        messages = await self._receive(self._dead_letters, 0)
        for message in messages:
            try:
                job = jobs.parse_job(message.get("Body", ""))
            except jobs.InvalidMessage:
                continue  # not a job of ours: for people
            event = jobs.Failed(job.video_id, "failed", jobs.Reason.ABANDONED, "dead-lettered")
            try:
                with tracing.consumer("dead letter apply", message):
                    await self.apply(event)
            except (*db.UNAVAILABLE, asyncpg.PostgresError) as exc:
                log.warning("dead letter not applied, will be retried", extra={"error": repr(exc)})
                continue
            await self.sqs.change_message_visibility(
                QueueUrl=self._dead_letters,
                ReceiptHandle=message["ReceiptHandle"],
                VisibilityTimeout=_SQS_MAX_VISIBILITY,
            )
        return len(messages)

    async def poll_pass(self) -> Any:
        await self.poll_once()
        await self.poll_dead_letters()
