"""Bad inputs are rejected once; faults are retried, and a job that never succeeds ends in the
dead-letter queue with a failed event. A redelivered job is not encoded twice."""

from __future__ import annotations

import json

import pytest

from risingstars.dev import infra
from risingstars.processor import media
from risingstars.processor.pipeline import SOURCE_MISSING


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
        assert event == {"type": "rejected", "video_id": video_id, "reason": reason}
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
    assert "mensaje de trabajo inválido" in event["reason"]


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


async def test_a_transient_s3_fault_is_retried_then_processed(rig_factory, tools) -> None:
    # S3 is down for the first attempt (nothing listens on its port), then comes up.
    port = infra.free_port()
    s3_url = f"http://127.0.0.1:{port}"
    async with rig_factory(max_receive_count=10) as rig:
        retried = tools.metric("processor_jobs_total", outcome="retried")
        video_id = "7b0e3f4c-9a51-4d2e-8c61-0f8a2b7d9e10"
        await rig.send(rig.job(video_id))
        async with rig.running(rig.settings(aws_endpoint_url_s3=s3_url)):
            await tools.eventually(
                lambda: tools.metric("processor_jobs_total", outcome="retried") > retried,
                timeout=60,
                what="a failed attempt",
            )
            s3_server = infra.start_moto(port)
            try:
                async with tools.aws_clients(s3_url) as (s3, _):
                    await s3.create_bucket(Bucket=rig.resources.bucket)
                    await s3.put_object(
                        Bucket=rig.resources.bucket,
                        Key=f"originals/{video_id}.mp4",
                        Body=rig.clips.get("tiny").read_bytes(),
                    )
                    (event,) = await rig.events(1, timeout=60)
                    listed = await s3.list_objects_v2(
                        Bucket=rig.resources.bucket, Prefix="processed/"
                    )
            finally:
                infra.stop(s3_server.proc)
        assert event["type"] == "processed" and event["video_id"] == video_id
        assert sorted(o["Key"] for o in listed["Contents"]) == [
            f"processed/{video_id}.jpg",
            f"processed/{video_id}.mp4",
        ]
        assert await rig.queue_counts() == (0, 0)


async def test_a_poison_job_ends_in_the_dead_letter_queue_with_a_failed_event(rig, tools) -> None:
    # Its original never appears: every attempt fails, maxReceiveCount (3) of them.
    video_id = "0d6a41f2-33b8-4c7e-9f0a-5e2c1b7a8d34"
    job = rig.job(video_id)
    await rig.send(job)
    async with rig.running():
        (event,) = await rig.events(1, timeout=60)
        assert event["type"] == "failed" and event["video_id"] == video_id
        assert SOURCE_MISSING in event["reason"] and "3 intentos" in event["reason"]
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


async def test_a_redelivered_job_republishes_its_event_without_encoding(rig, tools) -> None:
    video_id = await rig.submit("tiny")
    async with rig.running():
        (first,) = await rig.events(1)
        output = await rig.s3.head_object(Bucket=rig.resources.bucket, Key=first["processed_key"])
        encodes = tools.metric("processor_ffmpeg_duration_seconds_count")
        reused = tools.metric("processor_jobs_total", outcome="reused")

        await rig.send(rig.job(video_id))
        (again,) = await rig.events(1)
        assert again == first
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
