"""Bad inputs are rejected once; faults are retried, and a job that never succeeds ends in the
dead-letter queue with a failed event. Events carry stable reason codes, never ffmpeg's words.
A redelivered job is not encoded twice."""

from __future__ import annotations

import json
import logging
import re

import pytest

from risingstars.dev import infra
from risingstars.processor import media


@pytest.mark.parametrize(
    ("clip", "reason"),
    [
        ("not_a_video", media.NOT_MP4),
        ("audio_only", media.NO_VIDEO),
        ("cover_art", media.NO_VIDEO),
        ("undecodable", media.UNDECODABLE),
    ],
    ids=["not_a_video", "audio_only", "cover_art", "undecodable"],
)
async def test_a_bad_input_is_rejected_with_a_reason_and_its_message_deleted(
    rig, tools, clip, reason
) -> None:
    retried = tools.metric("processor_jobs_total", outcome="retried")
    video_id = await rig.submit(clip)
    async with rig.running():
        (event,) = await rig.events(1)
        # The attempt's time: the upload service's ETA counts failures' service time too.
        assert event.pop("service_seconds") >= 0
        assert event == {
            "type": "rejected",
            "video_id": video_id,
            "reason": "not_a_video",
            "detail": reason,
            "version": 1,
        }
        await tools.eventually(
            lambda: _empty(rig), timeout=10, what="the job's message to be deleted"
        )
    assert await rig.keys("processed/") == []
    assert tools.metric("processor_jobs_total", outcome="retried") == retried
    assert rig.scratch() == []


async def _empty(rig) -> bool:
    return await rig.queue_counts() == (0, 0)


async def test_a_job_message_without_its_keys_is_reported_failed_and_deleted(rig, tools) -> None:
    video_id = await rig.put_source("tiny")
    await rig.send({"type": "process", "video_id": video_id})
    async with rig.running():
        (event,) = await rig.events(1)
        await tools.eventually(lambda: _empty(rig), timeout=10, what="the message deleted")
    assert event["type"] == "failed" and event["video_id"] == video_id
    assert event["reason"] == "invalid_job"


async def test_a_message_that_names_no_video_goes_to_the_dead_letter_queue(rig, tools) -> None:
    await rig.send("this is not JSON")
    async with rig.running():
        await tools.eventually(
            lambda: _dead_letters(rig), timeout=30, what="the message in the dead-letter queue"
        )
    assert await rig.no_more_events(1) == []


async def _dead_letters(rig) -> int:
    visible, _ = await rig.queue_counts(rig.resources.dlq_url)
    return visible


async def test_a_transient_fault_is_retried_then_processed(rig, tools) -> None:
    # The events queue does not exist yet: the first attempt encodes but cannot publish; once
    # the queue is there, the retry finds the output and publishes without encoding again.
    retried = tools.metric("processor_jobs_total", outcome="retried")
    encodes = tools.metric("processor_ffmpeg_duration_seconds_count")
    name = rig.resources.events_queue_url.rsplit("/", 1)[1] + "-later"
    later = rig.resources.events_queue_url.rsplit("/", 1)[0] + "/" + name
    video_id = await rig.submit("tiny")
    async with rig.running(rig.settings(events_queue_url=later)):
        await tools.eventually(
            lambda: tools.metric("processor_jobs_total", outcome="retried") > retried,
            timeout=60,
            what="a failed attempt",
        )
        assert (await rig.sqs.create_queue(QueueName=name))["QueueUrl"] == later
        await tools.eventually(
            lambda: _received(rig, later), timeout=60, what="the processed event"
        )
    (message,) = rig.received
    event = json.loads(message["Body"])
    assert event["type"] == "processed" and event["video_id"] == video_id
    assert tools.metric("processor_ffmpeg_duration_seconds_count") == encodes + 1
    assert await rig.keys("processed/") == [
        f"processed/{video_id}.jpg",
        f"processed/{video_id}.mp4",
    ]
    assert await rig.queue_counts() == (0, 0)


async def _received(rig, url: str) -> bool:
    """Whether an outcome arrived (the attempt's `started` report aside)."""
    response = await rig.sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)
    messages = response.get("Messages", [])
    rig.received = [m for m in messages if json.loads(m["Body"])["type"] != "started"]
    return bool(rig.received)


async def test_a_poison_job_ends_in_the_dead_letter_queue_with_a_failed_event(rig, tools) -> None:
    # Storage never answers (nothing listens on the S3 port): every attempt fails,
    # maxReceiveCount (3) of them.
    video_id = "0d6a41f2-33b8-4c7e-9f0a-5e2c1b7a8d34"
    job = rig.job(video_id)
    await rig.send(job)
    dead_s3 = f"http://127.0.0.1:{infra.free_port()}"
    async with rig.running(rig.settings(aws_endpoint_url_s3=dead_s3)):
        (event,) = await rig.events(1, timeout=60)
        assert event["type"] == "failed" and event["video_id"] == video_id
        assert event["reason"] == "processing_failed"
        assert "3 attempts" in event["detail"]
        await tools.eventually(
            lambda: _dead_letters(rig), timeout=30, what="the job in the dead-letter queue"
        )
    response = await rig.sqs.receive_message(
        QueueUrl=rig.resources.dlq_url, MessageSystemAttributeNames=["ApproximateReceiveCount"]
    )
    (dead,) = response["Messages"]
    assert json.loads(dead["Body"]) == job
    assert await rig.queue_counts() == (0, 0)
    assert await rig.no_more_events(1) == []


async def test_a_job_whose_original_is_gone_fails_at_once(rig, tools) -> None:
    # The video was deleted after its job was sent: S3 is read-after-write consistent, so no
    # retry will find the original.
    retried = tools.metric("processor_jobs_total", outcome="retried")
    video_id = "5c1f7a2e-8b3d-4e6f-9a0b-1c2d3e4f5a6b"
    await rig.send(rig.job(video_id))
    async with rig.running():
        (event,) = await rig.events(1, timeout=60)
        await tools.eventually(lambda: _empty(rig), timeout=10, what="the message deleted")
    assert event["type"] == "failed" and event["video_id"] == video_id
    assert event["reason"] == "source_missing"
    assert tools.metric("processor_jobs_total", outcome="retried") == retried
    assert await _dead_letters(rig) == 0


async def test_failure_events_carry_a_reason_code_not_ffmpeg_stderr(
    rig_factory, tools, tmp_path, caplog
) -> None:
    # A broken logo card makes every encode fail, with ffmpeg's own account on stderr.
    card = tmp_path / "broken-card.png"
    card.write_bytes(b"not a png at all" * 64)
    async with rig_factory(max_receive_count=2) as rig:
        video_id = await rig.submit("tiny")
        with caplog.at_level(logging.WARNING, logger="risingstars.processor"):
            async with rig.running(rig.settings(logo_card_path=str(card))):
                (event,) = await rig.events(1, timeout=60)
    assert event["type"] == "failed" and event["video_id"] == video_id
    assert event["reason"] == "processing_failed"
    assert re.fullmatch(
        r"ffmpeg exited with code \d+ while encoding \(2 attempts\)", event["detail"]
    )
    # The raw text is kept for operators, in the log.
    logged = [str(getattr(r, "stderr", "")) for r in caplog.records]
    assert any("Invalid data found when processing input" in text for text in logged)


async def test_a_redelivered_job_republishes_its_event_without_encoding(rig, tools) -> None:
    video_id = await rig.submit("tiny")
    async with rig.running():
        (first,) = await rig.events(1)
        output = await rig.s3.head_object(Bucket=rig.resources.bucket, Key=first["processed_key"])
        encodes = tools.metric("processor_ffmpeg_duration_seconds_count")
        reused = tools.metric("processor_jobs_total", outcome="reused")

        await rig.send(rig.job(video_id))
        (again,) = await rig.events(1)
        # The same event, but no service time: finding the output took no processing.
        assert first["service_seconds"] > 0
        assert again == {k: v for k, v in first.items() if k != "service_seconds"}
        # Counted once the message is settled, just after the event went out.
        await tools.eventually(
            lambda: tools.metric("processor_jobs_total", outcome="reused") == reused + 1,
            timeout=10,
            what="the attempt counted as reused",
        )
        assert tools.metric("processor_ffmpeg_duration_seconds_count") == encodes
        same = await rig.s3.head_object(Bucket=rig.resources.bucket, Key=first["processed_key"])
        assert (same["ETag"], same["LastModified"]) == (output["ETag"], output["LastModified"])

        # A different original under the same key is a new source: encoded again.
        await rig.put_source("short_12s", video_id)
        await rig.send(rig.job(video_id))
        (third,) = await rig.events(1)
        assert third["duration_seconds"] == pytest.approx(17.0, abs=0.1)
        assert tools.metric("processor_ffmpeg_duration_seconds_count") == encodes + 1
        source = await rig.s3.head_object(
            Bucket=rig.resources.bucket, Key=f"originals/{video_id}.mp4"
        )
        latest = await rig.s3.head_object(Bucket=rig.resources.bucket, Key=first["processed_key"])
        assert latest["Metadata"]["source-etag"] == source["ETag"].strip('"')
