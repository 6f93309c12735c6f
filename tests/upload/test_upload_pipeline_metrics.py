"""The pipeline's own series (what the alerts and the dashboard read, docs/observability.md),
driven by real traffic: uploads on every path through the API, jobs in the real SQS queues and
the processor's events applied by the real worker. Counters are read as deltas; the gauges are
this test's own queues, read by its worker."""

from __future__ import annotations

import base64
import json

import httpx
from prometheus_client import REGISTRY

TUS = {"Tus-Resumable": "1.0.0"}


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _snapshot(*series: tuple[str, dict[str, str]]) -> dict[tuple, float]:
    return {
        (name, tuple(sorted(labels.items()))): metric(name, **labels) for name, labels in series
    }


def _delta(before: dict[tuple, float]) -> dict[str, float]:
    changed = {}
    for (name, labels), value in before.items():
        now = metric(name, **dict(labels))
        if now != value:
            changed[name + str(dict(labels) if labels else "")] = now - value
    return changed


VIDEOS = "upload_videos_total"
BYTES = "upload_bytes_ingested_total"


async def test_videos_are_counted_by_outcome_and_their_time_to_playable_observed(
    svc, clips, sqs, tools
) -> None:
    before = _snapshot(
        (VIDEOS, {"event": "accepted", "reason": ""}),
        (VIDEOS, {"event": "processed", "reason": ""}),
        (VIDEOS, {"event": "rejected", "reason": "not_a_video"}),
        (VIDEOS, {"event": "failed", "reason": "source_missing"}),
        ("upload_time_to_playable_seconds_count", {}),
        (BYTES, {"path": "stream"}),
    )
    ids = [(await svc.upload(clips["ok"])).json()["video_id"] for _ in range(3)]
    processed = tools.processed_event(ids[0])
    await tools.send_events(
        svc,
        sqs,
        processed,
        processed,  # a repeat is not a second video
        {"type": "rejected", "video_id": ids[1], "reason": "not_a_video", "version": 1},
        {"type": "failed", "video_id": ids[2], "reason": "source_missing", "version": 1},
    )
    assert _delta(before) == {
        "upload_videos_total{'event': 'accepted', 'reason': ''}": 3,
        "upload_videos_total{'event': 'processed', 'reason': ''}": 1,
        "upload_videos_total{'event': 'rejected', 'reason': 'not_a_video'}": 1,
        "upload_videos_total{'event': 'failed', 'reason': 'source_missing'}": 1,
        "upload_time_to_playable_seconds_count": 1,
        "upload_bytes_ingested_total{'path': 'stream'}": 3 * clips["ok"].stat().st_size,
    }


async def test_bytes_are_counted_on_the_direct_and_tus_paths(svc, clips) -> None:
    data = clips["ok"].read_bytes()
    before = _snapshot((BYTES, {"path": "direct"}), (BYTES, {"path": "tus"}))

    created = await svc.client.post(
        "/api/videos/uploads", headers=svc.headers(), json={"title": "Directo", "size": len(data)}
    )
    assert created.status_code == 201, created.text
    (part,) = created.json()["parts"]
    async with httpx.AsyncClient(timeout=30) as s3_client:
        assert (await s3_client.put(part["url"], content=data)).status_code == 200
    completed = await svc.client.post(
        f"/api/videos/uploads/{created.json()['upload_id']}/complete", headers=svc.headers()
    )
    assert completed.status_code == 201, completed.text

    title = base64.b64encode(b"Tiro libre").decode()
    started = await svc.client.post(
        "/api/videos/tus/",
        headers={**svc.headers(), **TUS, "Upload-Length": str(len(data)),
                 "Upload-Metadata": f"title {title}"},
    )  # fmt: skip
    assert started.status_code == 201, started.text
    half = len(data) // 2
    for offset, chunk in ((0, data[:half]), (half, data[half:])):
        sent = await svc.client.patch(
            started.headers["Location"],
            headers={**svc.headers(), **TUS, "Upload-Offset": str(offset),
                     "Content-Type": "application/offset+octet-stream"},
            content=chunk,
        )  # fmt: skip
        assert sent.status_code == 204, sent.text
    assert _delta(before) == {
        "upload_bytes_ingested_total{'path': 'direct'}": len(data),
        "upload_bytes_ingested_total{'path': 'tus'}": len(data),
    }


async def test_the_queue_gauges_follow_the_jobs_queue_its_dead_letters_and_the_oldest_wait(
    service, clips, sqs, aws, tools
) -> None:
    async with service(queue_refresh_seconds=0.1) as svc:
        ids = [(await svc.upload(clips["ok"])).json()["video_id"] for _ in range(3)]

        def gauges() -> tuple[float, float, float]:
            return (
                metric("upload_jobs_queue_messages", state="visible"),
                metric("upload_jobs_queue_messages", state="in_flight"),
                metric("upload_dead_letter_messages"),
            )

        await tools.eventually(lambda: gauges() == (3, 0, 0), what="3 jobs waiting")
        assert metric("upload_jobs_queue_oldest_age_seconds") > 0

        # A processor takes one (in flight); another job was dead-lettered with no report.
        taken = sqs.receive_message(
            QueueUrl=aws.jobs_queue_url, MaxNumberOfMessages=1, VisibilityTimeout=600
        )["Messages"]
        dead = sqs.receive_message(QueueUrl=aws.jobs_queue_url, MaxNumberOfMessages=1)["Messages"]
        sqs.send_message(QueueUrl=aws.dlq_url, MessageBody=dead[0]["Body"])
        sqs.delete_message(QueueUrl=aws.jobs_queue_url, ReceiptHandle=dead[0]["ReceiptHandle"])
        # The worker applies the dead letter as a failure and leaves it there, hidden: it
        # still counts.
        abandoned = json.loads(dead[0]["Body"])["video_id"]
        status = "SELECT status FROM videos WHERE id = $1::uuid"

        async def failed() -> bool:
            return await svc.sql(status, abandoned) == "failed"

        await tools.eventually(failed, what="the dead letter applied")
        passes = metric("background_task_passes_total", task="queue-gauges", result="ok")
        await tools.eventually(
            lambda: (
                metric("background_task_passes_total", task="queue-gauges", result="ok")
                >= passes + 2
            ),
            what="the gauges read again",
        )
        assert gauges() == (1, 1, 1)

        # Once every video has an outcome, nothing waits.
        for video_id in ids:
            if video_id != abandoned:
                await tools.send_events(svc, sqs, tools.processed_event(video_id))
        await tools.eventually(
            lambda: metric("upload_jobs_queue_oldest_age_seconds") == 0, what="nothing waiting"
        )
        assert taken
