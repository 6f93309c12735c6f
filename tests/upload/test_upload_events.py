"""The processor's events, consumed from the real events queue: applied idempotently, and
dropped when they name no existing video."""

from __future__ import annotations

import json
import uuid

EVENTS_FIELDS = ("status", "failure_reason", "processed_key", "thumbnail_key", "processed_at")


async def _state(svc, video_id: str):
    row = await svc.runtime.pool.fetchrow(
        "SELECT status, failure_reason, processed_key, thumbnail_key, processed_at "
        "FROM videos WHERE id = $1::uuid",
        video_id,
    )
    return tuple(row[f] for f in EVENTS_FIELDS) if row else None


def _queue_empty(sqs, url: str) -> bool:
    attrs = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return (
        attrs["ApproximateNumberOfMessages"]
        == attrs["ApproximateNumberOfMessagesNotVisible"]
        == "0"
    )


async def _send_and_settle(svc, sqs, tools, *events) -> None:
    url = svc.settings.events_queue_url
    for event in events:
        body = event if isinstance(event, str) else json.dumps(event)
        sqs.send_message(QueueUrl=url, MessageBody=body)
    # Consumed means deleted: nothing visible or in flight.
    await tools.eventually(lambda: _queue_empty(sqs, url), what="events consumed")


def _processed(video_id: str) -> dict:
    return {
        "type": "processed",
        "video_id": video_id,
        "processed_key": f"processed/{video_id}.mp4",
        "thumbnail_key": f"processed/{video_id}.jpg",
        "duration_seconds": 30.0,
        "size_bytes": 1234,
    }


async def test_processed_is_applied_once_and_repeats_change_nothing(svc, clips, sqs, tools):
    video_id = (await svc.upload(clips["ok"])).json()["video_id"]
    await _send_and_settle(svc, sqs, tools, _processed(video_id))
    status, reason, processed_key, thumbnail_key, processed_at = await _state(svc, video_id)
    assert (status, reason) == ("processed", None)
    assert (processed_key, thumbnail_key) == (
        f"processed/{video_id}.mp4",
        f"processed/{video_id}.jpg",
    )
    assert processed_at is not None
    await _send_and_settle(svc, sqs, tools, _processed(video_id), _processed(video_id))
    assert (await _state(svc, video_id))[4] == processed_at
    # A stale failure report after the success does not undo it.
    failed = {"type": "failed", "video_id": video_id, "reason": "attempt 2 timed out"}
    await _send_and_settle(svc, sqs, tools, failed)
    assert (await _state(svc, video_id))[:2] == ("processed", None)


async def test_failed_and_rejected_record_the_reason(svc, clips, sqs, tools) -> None:
    failed_id = (await svc.upload(clips["ok"])).json()["video_id"]
    rejected_id = (await svc.upload(clips["ok"])).json()["video_id"]
    await _send_and_settle(
        svc,
        sqs,
        tools,
        {"type": "failed", "video_id": failed_id, "reason": "ffmpeg exited with 1"},
        {"type": "rejected", "video_id": rejected_id, "reason": "no video stream"},
        {"type": "rejected", "video_id": rejected_id, "reason": "no video stream"},
    )
    assert (await _state(svc, failed_id))[:2] == ("failed", "ffmpeg exited with 1")
    assert (await _state(svc, rejected_id))[:2] == ("rejected", "no video stream")
    detail = await svc.client.get(f"/api/videos/{failed_id}", headers=svc.headers())
    assert detail.json()["failure_reason"] == "ffmpeg exited with 1"
    # A success that arrives after all (a retry) wins: a video that succeeds ends processed.
    await _send_and_settle(svc, sqs, tools, _processed(failed_id))
    assert (await _state(svc, failed_id))[:2] == ("processed", None)


async def test_events_for_unknown_videos_and_malformed_events_are_dropped(svc, sqs, tools):
    unknown = str(uuid.uuid4())
    await _send_and_settle(
        svc,
        sqs,
        tools,
        _processed(unknown),
        {"type": "failed", "video_id": unknown, "reason": "x"},
        "not json",
        {"type": "processed"},
        {"type": "exploded", "video_id": unknown},
        {"type": "processed", "video_id": "not-a-uuid"},
    )
    assert await svc.sql("SELECT count(*) FROM videos") == 0
    metrics = (await svc.client.get("/metrics")).text
    assert 'upload_events_consumed_total{result="dropped",type="processed"}' in metrics
    assert 'upload_events_consumed_total{result="invalid",type="unknown"}' in metrics
