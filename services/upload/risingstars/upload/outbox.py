"""The transactional outbox: messages written in the transaction of the change they follow, sent
right after the commit and retried by a relay (any number of replicas: FOR UPDATE SKIP LOCKED).
Delivery is at least once: consumers are idempotent."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import random
import uuid
from typing import Any

import asyncpg

from risingstars import jobs
from risingstars.kit import tracing
from risingstars.upload import metrics, queries, storage

log = logging.getLogger("risingstars.upload.outbox")

JOB = "job"
DELETE_OBJECTS = "delete_objects"
BATCH = 10  # SQS SendMessageBatch takes at most 10 entries
SEND_TIMEOUT_SECONDS = 10.0
# A request does not wait long for SQS: the relay has the message anyway.
REQUEST_TIMEOUT_SECONDS = 2.0


def job_message(video_id: uuid.UUID) -> str:
    return jobs.encode(
        jobs.Job(
            video_id=str(video_id),
            source_key=storage.original_key(video_id),
            processed_key=storage.processed_key(video_id),
            thumbnail_key=storage.thumbnail_key(video_id),
        )
    )


@dataclasses.dataclass(frozen=True)
class Delivery:
    """A message recorded in a transaction, to send once that transaction has committed."""

    outbox_id: int
    kind: str
    payload: str
    # The W3C trace context of the request that recorded it (None when it had none).
    traceparent: str | None = None


class Outbox:
    def __init__(
        self,
        pool: asyncpg.Pool,
        sqs: Any,
        s3: Any,
        *,
        bucket: str,
        jobs_queue_url: str,
        grace_seconds: float = 30.0,
        poll_seconds: float = 1.0,
        max_backoff_seconds: float = 60.0,
    ) -> None:
        self.pool, self.sqs, self.s3 = pool, sqs, s3
        self.bucket = bucket
        self.queue_url = jobs_queue_url
        self.grace = grace_seconds
        self.poll = poll_seconds
        self.max_backoff = max_backoff_seconds

    async def add(
        self, conn: asyncpg.Connection, kind: str, video_id: uuid.UUID | None, payload: str
    ) -> Delivery:
        """Record a message in the caller's transaction, with its trace for whoever sends it."""
        traceparent = tracing.traceparent()
        outbox_id = await conn.fetchval(
            queries.INSERT_OUTBOX, kind, video_id, payload, float(self.grace), traceparent
        )
        if kind == JOB and video_id is not None:
            tracing.annotate("stored", video_id=str(video_id))
        return Delivery(outbox_id, kind, payload, traceparent)

    async def deliver_now(self, delivery: Delivery) -> bool:
        """The in-request attempt after the commit; never raises (the relay sends the rest)."""
        outbox_id, kind = delivery.outbox_id, delivery.kind
        if kind == JOB:
            # One count per accepted video, whichever path uploaded it.
            metrics.VIDEOS.labels("accepted", "").inc()
        try:
            await asyncio.wait_for(
                self._send_one(kind, delivery.payload, delivery.traceparent),
                REQUEST_TIMEOUT_SECONDS,
            )
        except Exception as exc:
            log.warning(
                "outbox delivery deferred to the relay",
                extra={"outbox_id": outbox_id, "kind": kind, "error": repr(exc)},
            )
            # Due for the relay now, without the grace period.
            await self._quietly(queries.RETRY_OUTBOX, outbox_id, self.backoff(0), repr(exc)[:500])
            return False
        # If this fails the row stays and is sent again (consumers are idempotent).
        await self._quietly(queries.DELETE_OUTBOX, outbox_id)
        metrics.OUTBOX_PUBLISHED.labels("request").inc()
        return True

    async def _quietly(self, query: str, *args: Any) -> None:
        try:
            await asyncio.wait_for(self.pool.execute(query, *args), REQUEST_TIMEOUT_SECONDS)
        except Exception as exc:
            log.warning("outbox row not updated", extra={"outbox_id": args[0], "error": repr(exc)})

    async def _send_one(self, kind: str, payload: str, traceparent: str | None) -> None:
        if kind == JOB:
            # Re-encoded: whatever the database did to the JSON, the wire format is the module's.
            body = jobs.encode(jobs.parse_job(payload))
            with tracing.producer("jobs send", traceparent) as attributes:
                await self.sqs.send_message(
                    QueueUrl=self.queue_url, MessageBody=body, MessageAttributes=attributes
                )
        elif kind == DELETE_OBJECTS:
            await storage.delete_keys(self.s3, self.bucket, json.loads(payload)["keys"])
        else:
            raise ValueError(f"unknown outbox kind {kind!r}")

    def backoff(self, attempts: int) -> float:
        base = min(self.max_backoff, self.poll * 2 ** min(attempts, 16))
        return base * random.uniform(0.8, 1.2)

    async def relay_once(self) -> int:
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(queries.DUE_OUTBOX, BATCH)
            if not rows:
                return 0
            failures = await self._send_jobs([r for r in rows if r["kind"] == JOB])
            for row in (r for r in rows if r["kind"] != JOB):
                try:
                    await asyncio.wait_for(
                        self._send_one(row["kind"], row["payload"], row["traceparent"]),
                        SEND_TIMEOUT_SECONDS,
                    )
                except Exception as exc:
                    failures[row["id"]] = repr(exc)
            for row in rows:
                if row["id"] in failures:
                    delay = self.backoff(row["attempts"])
                    await conn.execute(
                        queries.RETRY_OUTBOX, row["id"], delay, failures[row["id"]][:500]
                    )
                else:
                    await conn.execute(queries.DELETE_OUTBOX, row["id"])
            sent = len(rows) - len(failures)
            if sent:
                metrics.OUTBOX_PUBLISHED.labels("relay").inc(sent)
            if failures:
                log.warning(
                    "outbox delivery failed, will retry",
                    extra={"failed": len(failures), "error": next(iter(failures.values()))},
                )
            return len(rows)

    async def _send_jobs(self, rows: list[asyncpg.Record]) -> dict[int, str]:
        failures: dict[int, str] = {}
        entries = []
        with contextlib.ExitStack() as spans:
            for row in rows:
                try:
                    body = jobs.encode(jobs.parse_job(row["payload"]))
                except jobs.InvalidMessage as exc:
                    failures[row["id"]] = repr(exc)
                    continue
                # One send span per job, each in the trace of the upload that recorded it.
                attributes = spans.enter_context(tracing.producer("jobs send", row["traceparent"]))
                entries.append(
                    {"Id": str(row["id"]), "MessageBody": body, "MessageAttributes": attributes}
                )
            if not entries:
                return failures
            try:
                response = await asyncio.wait_for(
                    self.sqs.send_message_batch(QueueUrl=self.queue_url, Entries=entries),
                    SEND_TIMEOUT_SECONDS,
                )
            except Exception as exc:
                return failures | {int(e["Id"]): repr(exc) for e in entries}
        return failures | {
            int(f["Id"]): f"{f.get('Code')}: {f.get('Message')}" for f in response.get("Failed", [])
        }

    async def relay_pass(self) -> bool:
        """One pass of the relay (periodic): True when a full batch went, so more may wait."""
        handled = await self.relay_once()
        metrics.OUTBOX_BACKLOG.set(await self.pool.fetchval(queries.COUNT_OUTBOX))
        return handled >= BATCH
