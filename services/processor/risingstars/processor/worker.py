"""The SQS worker loop: long polling for as many jobs as there are free slots, a visibility
heartbeat per running job, retries through the message's visibility, and a graceful stop.

Failure handling, per attempt (events carry a `Reason` code, see failures.py):
- the video is bad or too costly (Rejected), or ffmpeg timed out again on a redelivery: a
  `rejected` event, the message deleted;
- nothing left to process (Gone: the original was deleted): a `failed` event at once, the
  message deleted (a retry cannot help, and the dead-letter queue is for what a person must see);
- anything else: the message comes back after an exponential backoff; on the last attempt a
  `failed` event is published and the message is released, so the queue's redrive policy moves
  it to the dead-letter queue on its next receive;
- WORK_DIR full (NoScratchSpace): this worker's problem, never the video's. The message comes
  back after the backoff (to any worker; on its last delivery as a fresh copy, so the redrive
  policy never sends it to the dead-letter queue), and this worker is not ready and receives
  nothing until its scratch has more room than when it filled up (or RETRY_MAX_SECONDS passed).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import time
from collections.abc import Callable
from typing import Any, Literal

from risingstars import jobs
from risingstars.jobs import Failed, Job, Reason
from risingstars.kit import aws, tracing
from risingstars.kit.app import Lifecycle
from risingstars.processor import metrics, scratch
from risingstars.processor.failures import Gone, NoScratchSpace, Rejected, TimedOut, Transient
from risingstars.processor.pipeline import Pipeline
from risingstars.processor.settings import Settings

log = logging.getLogger("risingstars.processor.worker")

_SQS_MAX_BATCH = 10
_READINESS_RECEIVE_FAILURES = 3


def backoff_seconds(
    attempt: int, base: float, cap: float, rand: Callable[[], float] = random.random
) -> int:
    """Exponential in the attempt number, capped, with jitter over the upper half so retries of
    a burst of failed jobs spread out."""
    ceiling = min(cap, base * 2 ** min(max(attempt - 1, 0), 30))
    return max(1, round(ceiling / 2 + rand() * ceiling / 2))


@dataclasses.dataclass(frozen=True)
class _Settle:
    """What to do with the message once its heartbeat has stopped."""

    outcome: str
    delete: bool = False
    visibility: int | None = None


class Worker:
    def __init__(
        self,
        settings: Settings,
        *,
        sqs: Any,
        s3: Any,
        ffmpeg: str,
        lifecycle: Lifecycle | None = None,
    ) -> None:
        self.settings = settings
        self.sqs = sqs
        self.pipeline = Pipeline(settings, s3, ffmpeg)
        self.lifecycle = lifecycle
        self.max_attempts = settings.max_attempts
        self.dead_letter_queue = True
        self._jobs: set[asyncio.Task] = set()
        self._stop = asyncio.Event()
        self._deadline: float | None = None
        self._loop_task: asyncio.Task | None = None
        self._watch_task: asyncio.Task | None = None
        self._receive_failures = 0
        # (free bytes, monotonic time) when a job last met a full WORK_DIR; None when it has room.
        self._scratch_full: tuple[int, float] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        await asyncio.to_thread(scratch.sweep, self.settings.work_dir)
        await self._read_redrive_policy()
        self._loop_task = asyncio.create_task(self._receive_loop(), name="processor-receive")
        if self.lifecycle is not None:
            self._watch_task = asyncio.create_task(self._watch_draining(), name="processor-drain")
        log.info(
            "worker started",
            extra={"concurrency": self.settings.concurrency, "max_attempts": self.max_attempts},
        )

    def begin_stop(self) -> None:
        """Receive nothing more; running jobs get SHUTDOWN_TIMEOUT_SECONDS from now."""
        if self._deadline is None:
            self._deadline = time.monotonic() + self.settings.shutdown_timeout_seconds
            log.info("stopping: no new jobs", extra={"running": len(self._jobs)})
        self._stop.set()

    async def stop(self) -> None:
        self.begin_stop()
        if self._watch_task is not None:
            self._watch_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch_task
        # The receive loop ends once its current long poll returns (it hands back whatever
        # that poll brought); running jobs get the rest of the grace period.
        waiting = set(self._jobs)
        if self._loop_task is not None:
            waiting.add(self._loop_task)
        if not waiting:
            return
        assert self._deadline is not None
        remaining = max(0.0, self._deadline - time.monotonic())
        _, pending = await asyncio.wait(waiting, timeout=remaining)
        if pending:
            jobs = len(pending - {self._loop_task})
            log.warning("grace period over: handing jobs back", extra={"jobs": jobs})
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def check(self) -> None:
        """Readiness: the loop runs and the jobs queue answers."""
        if self._loop_task is None or self._loop_task.done():
            raise RuntimeError("worker loop is not running")
        if self._receive_failures >= _READINESS_RECEIVE_FAILURES:
            raise RuntimeError("jobs queue unreachable")
        if self._scratch_full is not None:
            raise RuntimeError("scratch disk (WORK_DIR) full")

    @property
    def running(self) -> int:
        return len(self._jobs)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    async def _watch_draining(self) -> None:
        # kit.serve flips `draining` from its SIGTERM handler; stop receiving at once, not
        # DRAIN_SECONDS later when the lifespan ends.
        assert self.lifecycle is not None
        while not self.lifecycle.draining:  # noqa: ASYNC110  # a plain flag, no event to await
            await asyncio.sleep(0.2)
        self.begin_stop()

    async def _read_redrive_policy(self) -> None:
        try:
            policy = await aws.redrive_policy(self.sqs, self.settings.jobs_queue_url)
        except Exception as exc:
            log.warning(
                "cannot read the jobs queue's redrive policy; using MAX_ATTEMPTS",
                extra={"error": repr(exc)},
            )
            return
        if policy is None:
            self.dead_letter_queue = False
            log.warning("the jobs queue has no dead-letter queue: failed jobs are deleted")
            return
        count = int(policy["maxReceiveCount"])
        if count != self.settings.max_attempts:
            # The queue decides when a message leaves; the failed event must come before that.
            log.warning(
                "MAX_ATTEMPTS differs from the queue's maxReceiveCount; using the queue's",
                extra={"max_attempts": self.settings.max_attempts, "max_receive_count": count},
            )
        self.max_attempts = count

    # -- receiving -------------------------------------------------------------------------

    async def _receive_loop(self) -> None:
        while not self._stop.is_set():
            free = self.settings.concurrency - len(self._jobs)
            if free <= 0:
                await self._wait_for_slot()
                continue
            if self._scratch_full is not None:
                await self._wait_for_room()
                continue
            received = await self._receive(min(free, _SQS_MAX_BATCH))
            if self._stop.is_set():
                for message in received:
                    await self._visibility(message["ReceiptHandle"], 0)
                break
            for message in received:
                task = asyncio.create_task(self._job(message))
                self._jobs.add(task)
                task.add_done_callback(self._jobs.discard)

    async def _wait_for_slot(self) -> None:
        stopping = asyncio.create_task(self._stop.wait())
        try:
            await asyncio.wait({stopping, *self._jobs}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()

    async def _wait_for_room(self) -> None:
        assert self._scratch_full is not None
        free_then, since = self._scratch_full
        root = self.settings.work_dir
        while not self._stop.is_set():
            if await asyncio.to_thread(scratch.free_bytes, root) > free_then:
                break
            if time.monotonic() - since > self.settings.retry_max_seconds:
                break  # nothing changed here: try again rather than stay idle for ever
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), 1.0)
        self._scratch_full = None
        log.info("receiving again after a full scratch disk")

    async def _receive(self, count: int) -> list[dict[str, Any]]:
        # Not cancelled when stopping: a message delivered to an abandoned long poll would stay
        # invisible for a whole visibility timeout. The poll ends within RECEIVE_WAIT_SECONDS.
        try:
            response = await self.sqs.receive_message(
                QueueUrl=self.settings.jobs_queue_url,
                MaxNumberOfMessages=count,
                WaitTimeSeconds=self.settings.receive_wait_seconds,
                VisibilityTimeout=self.settings.visibility_timeout_seconds,
                MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
                MessageAttributeNames=tracing.MESSAGE_ATTRIBUTES,
            )
        except Exception as exc:
            metrics.RECEIVE_ERRORS.inc()
            self._receive_failures += 1
            pause = min(30.0, 2.0**self._receive_failures)
            log.warning("receive failed", extra={"error": repr(exc), "retry_in_s": pause})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), pause)
            return []
        self._receive_failures = 0
        return response.get("Messages", [])

    # -- one job ---------------------------------------------------------------------------

    async def _job(self, message: dict[str, Any]) -> None:
        started = time.monotonic()
        receipt = message["ReceiptHandle"]
        attributes = message.get("Attributes", {})
        attempt = int(attributes.get("ApproximateReceiveCount", "1"))
        if attempt == 1 and "SentTimestamp" in attributes:
            waited = time.time() - int(attributes["SentTimestamp"]) / 1000
            metrics.QUEUE_WAIT.observe(max(0.0, waited))
        metrics.IN_FLIGHT.inc()
        outcome = "handed_back"
        heartbeat = asyncio.create_task(self._heartbeat(receipt))
        try:
            try:
                # The job continues the trace of the upload that queued it.
                with tracing.consumer("job process", message, attempt=str(attempt)):
                    settle = await self._attempt(message.get("Body", ""), attempt)
            finally:
                heartbeat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await heartbeat
            outcome = settle.outcome
            if settle.delete:
                await self._delete(receipt)
            elif settle.visibility is not None:
                await self._visibility(receipt, settle.visibility)
        except asyncio.CancelledError:
            # Out of grace: ffmpeg is already stopped and the scratch removed (their own
            # cleanup ran); give the message straight back to the queue.
            await self._visibility(receipt, 0)
            raise
        finally:
            metrics.IN_FLIGHT.dec()
            metrics.JOBS.labels(outcome).inc()
            metrics.JOB_SECONDS.labels(outcome).observe(time.monotonic() - started)

    async def _attempt(self, body: str, attempt: int) -> _Settle:
        try:
            job = jobs.parse_job(body)
        except jobs.InvalidMessage as exc:
            return await self._malformed(exc, body)
        extra = {"video_id": job.video_id, "attempt": attempt}
        tracing.annotate("job received", video_id=job.video_id)
        await self._report_start(job)
        started = time.monotonic()

        def failed(kind: Literal["failed", "rejected"], reason: Reason, detail: str) -> Failed:
            # A failure kept this processor busy too: the upload service's ETA counts it.
            seconds = round(time.monotonic() - started, 3)
            return _failed(job, kind, reason, detail, seconds)

        event: jobs.Event
        try:
            try:
                result = await self.pipeline.run(job)
                event, outcome = result.event, "reused" if result.reused else "processed"
                if not result.reused:  # a reused output took no work: no service time
                    seconds = round(time.monotonic() - started, 3)
                    event = dataclasses.replace(result.event, service_seconds=seconds)
            except Rejected as exc:
                event, outcome = failed("rejected", exc.reason, exc.detail), "rejected"
            except Gone as exc:
                event, outcome = failed("failed", exc.reason, exc.detail), "failed"
            except TimedOut as exc:
                if attempt < self.settings.too_slow_attempts:
                    raise
                # A second attempt as slow as the first: the video, not a busy node, is the
                # cause; more attempts would spend FFMPEG_TIMEOUT_SECONDS each for nothing.
                detail = f"{exc.detail} on {attempt} attempts"
                event, outcome = failed("rejected", Reason.TOO_SLOW, detail), "rejected"
            await self._publish(event)
        except NoScratchSpace as exc:
            return await self._no_space(body, attempt, exc, extra)
        except Exception as exc:
            return await self._retry_or_fail(job, attempt, exc, time.monotonic() - started)
        log.info("job finished", extra={**extra, "outcome": outcome, "event": event})
        return _Settle(outcome, delete=True)

    async def _report_start(self, job: Job) -> None:
        """Tell the upload service the video is being processed (every attempt: it applies
        the first and ignores the rest). Not worth failing the job over."""
        try:
            await self._publish(jobs.Started(job.video_id))
        except Exception as exc:
            log.warning(
                "could not report the job's start",
                extra={"video_id": job.video_id, "error": repr(exc)},
            )

    async def _retry_or_fail(
        self, job: Job, attempt: int, exc: Exception, seconds: float
    ) -> _Settle:
        extra = {"video_id": job.video_id, "attempt": attempt, "max_attempts": self.max_attempts}
        if isinstance(exc, Transient):
            reason, detail = exc.reason, exc.detail
            log.warning("job attempt failed", extra={**extra, "detail": detail})
        else:  # a fault we did not foresee: still not the video's fault
            reason, detail = Reason.PROCESSING_FAILED, f"internal error ({type(exc).__name__})"
            log.error("job attempt crashed", exc_info=exc, extra=extra)
        if attempt < self.max_attempts:
            delay = backoff_seconds(
                attempt, self.settings.retry_base_seconds, self.settings.retry_max_seconds
            )
            log.info("job will be retried", extra={**extra, "retry_in_s": delay})
            return _Settle("retried", visibility=delay)
        try:
            detail = f"{detail} ({attempt} attempts)"
            await self._publish(_failed(job, "failed", reason, detail, round(seconds, 3)))
        except Exception as publish_exc:
            log.error("could not publish the failed event", exc_info=publish_exc, extra=extra)
        log.error("job failed for good", extra={**extra, "detail": detail})
        # Released, the next receive moves it to the dead-letter queue.
        if self.dead_letter_queue:
            return _Settle("failed", visibility=0)
        return _Settle("failed", delete=True)

    async def _no_space(
        self, body: str, attempt: int, exc: NoScratchSpace, extra: dict[str, Any]
    ) -> _Settle:
        free = await asyncio.to_thread(scratch.free_bytes, self.settings.work_dir)
        self._scratch_full = (free, time.monotonic())
        delay = backoff_seconds(
            attempt, self.settings.retry_base_seconds, self.settings.retry_max_seconds
        )
        log.warning(
            "scratch disk full: job handed back, not counted against the video",
            extra={**extra, "detail": exc.detail, "free_bytes": free, "retry_in_s": delay},
        )
        if attempt >= self.max_attempts and self.dead_letter_queue:
            # Its next receive would move it to the dead-letter queue (a failed video): send
            # a fresh copy instead. Should the delete fail, the copy finds the output (reused).
            try:
                await self.sqs.send_message(
                    QueueUrl=self.settings.jobs_queue_url,
                    MessageBody=body,
                    DelaySeconds=min(delay, 900),
                )
            except Exception as send_exc:
                log.warning("could not requeue the job", extra={**extra, "error": repr(send_exc)})
            else:
                return _Settle("no_space", delete=True)
        return _Settle("no_space", visibility=delay)

    async def _malformed(self, exc: jobs.InvalidMessage, body: str) -> _Settle:
        log.error("malformed job message", extra={"reason": exc.reason, "body": body[:1000]})
        if exc.video_id is not None:
            event = Failed(exc.video_id, "failed", Reason.INVALID_JOB, exc.reason)
            try:
                await self._publish(event)
            except Exception as publish_exc:
                log.warning("could not publish the failed event", exc_info=publish_exc)
                return _Settle("malformed", visibility=0)
            return _Settle("malformed", delete=True)
        # Nobody to tell: the dead-letter queue keeps it for a person to look at.
        if self.dead_letter_queue:
            return _Settle("malformed", visibility=0)
        return _Settle("malformed", delete=True)

    # -- SQS calls -------------------------------------------------------------------------

    async def _heartbeat(self, receipt: str) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat_seconds)
            await self._visibility(receipt, self.settings.visibility_timeout_seconds)

    async def _publish(self, event: jobs.Event) -> None:
        with tracing.producer(f"event {event.type} send", video_id=event.video_id) as attributes:
            await self.sqs.send_message(
                QueueUrl=self.settings.events_queue_url,
                MessageBody=jobs.encode(event),
                MessageAttributes=attributes,
            )

    async def _delete(self, receipt: str) -> None:
        try:
            await self.sqs.delete_message(
                QueueUrl=self.settings.jobs_queue_url, ReceiptHandle=receipt
            )
        except Exception as exc:
            # The event is out; a redelivery finds the output and only republishes it.
            log.warning("could not delete a finished job's message", extra={"error": repr(exc)})

    async def _visibility(self, receipt: str, seconds: int) -> None:
        try:
            await self.sqs.change_message_visibility(
                QueueUrl=self.settings.jobs_queue_url,
                ReceiptHandle=receipt,
                VisibilityTimeout=seconds,
            )
        except Exception as exc:
            log.warning(
                "could not change a job's visibility",
                extra={"error": repr(exc), "visibility_s": seconds},
            )


def _failed(
    job: Job,
    kind: Literal["failed", "rejected"],
    reason: Reason,
    detail: str,
    seconds: float | None = None,
) -> Failed:
    return Failed(job.video_id, kind, reason, detail, service_seconds=seconds)
