"""The transactional outbox: messages written in the same transaction as the change they
follow (a processing job with its video, stored objects to delete with a deleted video), sent
right after the commit, and retried by a relay until they go through.

The relay claims due rows with FOR UPDATE SKIP LOCKED, so any number of replicas can run it
without sending a row twice at the same time. Delivery is at least once: consumers are
idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import uuid
from typing import Any

import asyncpg

from risingstars.upload import metrics, queries, storage

log = logging.getLogger("risingstars.upload.outbox")

JOB = "job"
DELETE_OBJECTS = "delete_objects"
BATCH = 10  # SQS SendMessageBatch takes at most 10 entries


def job_message(video_id: uuid.UUID) -> dict[str, str]:
    return {
        "type": "process",
        "video_id": str(video_id),
        "source_key": storage.original_key(video_id),
        "processed_key": storage.processed_key(video_id),
        "thumbnail_key": storage.thumbnail_key(video_id),
    }


async def add(
    conn: asyncpg.Connection,
    kind: str,
    video_id: uuid.UUID | None,
    payload: dict[str, Any],
    *,
    grace_seconds: float,
) -> int:
    """Queue a message inside the caller's transaction."""
    return await conn.fetchval(
        queries.INSERT_OUTBOX, kind, video_id, json.dumps(payload), float(grace_seconds)
    )


class Outbox:
    def __init__(
        self,
        pool: asyncpg.Pool,
        sqs: Any,
        s3: Any,
        *,
        bucket: str,
        jobs_queue_url: str,
        poll_seconds: float = 1.0,
        max_backoff_seconds: float = 60.0,
        send_timeout_seconds: float = 10.0,
        request_timeout_seconds: float = 2.0,
    ) -> None:
        self.pool = pool
        self.sqs = sqs
        self.s3 = s3
        self.bucket = bucket
        self.queue_url = jobs_queue_url
        self.poll = poll_seconds
        self.max_backoff = max_backoff_seconds
        self.timeout = send_timeout_seconds
        # A request does not wait long for SQS: the relay has the message anyway.
        self.request_timeout = request_timeout_seconds

    async def deliver_now(self, outbox_id: int, kind: str, payload: dict[str, Any]) -> bool:
        """The in-request attempt after the commit; on any failure the row stays for the relay,
        and the caller carries on (the message is safe in the database)."""
        try:
            await asyncio.wait_for(self._send_one(kind, payload), self.request_timeout)
        except Exception as exc:
            log.warning(
                "outbox delivery deferred to the relay",
                extra={"outbox_id": outbox_id, "kind": kind, "error": repr(exc)},
            )
            # Due for the relay now, without the grace period.
            with contextlib.suppress(asyncpg.PostgresError, OSError):
                await self.pool.execute(
                    queries.RETRY_OUTBOX, outbox_id, self.backoff(0), repr(exc)[:500]
                )
            return False
        try:
            await self.pool.execute(queries.DELETE_OUTBOX, outbox_id)
        except (asyncpg.PostgresError, OSError) as exc:
            # Sent but still recorded: the relay will send it again (consumers are idempotent).
            log.warning(
                "outbox row not cleared", extra={"outbox_id": outbox_id, "error": repr(exc)}
            )
        metrics.OUTBOX_PUBLISHED.labels("request").inc()
        return True

    async def _send_one(self, kind: str, payload: dict[str, Any]) -> None:
        if kind == JOB:
            await self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=json.dumps(payload))
        elif kind == DELETE_OBJECTS:
            await storage.delete_keys(self.s3, self.bucket, payload["keys"])
        else:
            raise ValueError(f"unknown outbox kind {kind!r}")

    def backoff(self, attempts: int) -> float:
        base = min(self.max_backoff, self.poll * 2 ** min(attempts, 16))
        return base * random.uniform(0.8, 1.2)

    async def relay_once(self) -> int:
        """Deliver up to one batch of due messages; return how many rows were handled."""
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(queries.DUE_OUTBOX, BATCH)
            if not rows:
                return 0
            jobs = [r for r in rows if r["kind"] == JOB]
            others = [r for r in rows if r["kind"] != JOB]
            failures: dict[int, str] = {}
            if jobs:
                failures.update(await self._send_jobs(jobs))
            for row in others:
                try:
                    payload = json.loads(row["payload"])
                    await asyncio.wait_for(self._send_one(row["kind"], payload), self.timeout)
                except Exception as exc:
                    failures[row["id"]] = repr(exc)
            attempts = {r["id"]: r["attempts"] for r in rows}
            for row in rows:
                if row["id"] in failures:
                    delay = self.backoff(attempts[row["id"]])
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
        entries = [{"Id": str(r["id"]), "MessageBody": r["payload"]} for r in rows]
        try:
            response = await asyncio.wait_for(
                self.sqs.send_message_batch(QueueUrl=self.queue_url, Entries=entries), self.timeout
            )
        except Exception as exc:
            return {r["id"]: repr(exc) for r in rows}
        return {
            int(f["Id"]): f"{f.get('Code')}: {f.get('Message')}" for f in response.get("Failed", [])
        }

    async def refresh_backlog(self) -> int:
        count = await self.pool.fetchval(queries.COUNT_OUTBOX)
        metrics.OUTBOX_BACKLOG.set(count)
        return count

    async def run(self) -> None:
        """The relay loop, until cancelled."""
        while True:
            handled = 0
            try:
                handled = await self.relay_once()
                await self.refresh_backlog()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("outbox relay pass failed", extra={"error": repr(exc)})
            if handled < BATCH:
                await asyncio.sleep(self.poll)
