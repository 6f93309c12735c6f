"""The processor's events, consumed from the real events queue: applied idempotently, and
dropped when they name no existing video."""

from __future__ import annotations

import uuid

from prometheus_client import REGISTRY

from risingstars import jobs
from risingstars.upload import messages

EVENTS_FIELDS = ("status", "failure_reason", "processed_key", "thumbnail_key", "processed_at")


async def _state(svc, video_id: str):
    row = await svc.runtime.pool.fetchrow(
        "SELECT status, failure_reason, processed_key, thumbnail_key, processed_at "
        "FROM videos WHERE id = $1::uuid",
        video_id,
    )
    return tuple(row[f] for f in EVENTS_FIELDS) if row else None


async def test_processed_is_applied_once_and_repeats_change_nothing(svc, clips, sqs, tools):
    video_id = (await svc.upload(clips["ok"])).json()["video_id"]
    await tools.send_events(svc, sqs, tools.processed_event(video_id))
    status, reason, processed_key, thumbnail_key, processed_at = await _state(svc, video_id)
    assert (status, reason) == ("processed", None)
    assert (processed_key, thumbnail_key) == (
        f"processed/{video_id}.mp4",
        f"processed/{video_id}.jpg",
    )
    assert processed_at is not None
    again = tools.processed_event(video_id)
    await tools.send_events(svc, sqs, again, again)
    assert (await _state(svc, video_id))[4] == processed_at
    # A stale failure report after the success does not undo it.
    failed = {"type": "failed", "video_id": video_id, "reason": "too_slow"}
    await tools.send_events(svc, sqs, failed)
    assert (await _state(svc, video_id))[:2] == ("processed", None)


async def test_owners_read_a_spanish_reason_never_the_processors_text(
    svc, clips, sqs, tools
) -> None:
    failed_id = (await svc.upload(clips["ok"])).json()["video_id"]
    rejected_id = (await svc.upload(clips["ok"])).json()["video_id"]
    legacy_id = (await svc.upload(clips["ok"])).json()["video_id"]
    scratch = "ffmpeg exited with 1: /tmp/work/abc/in.mp4: Invalid data"
    await tools.send_events(
        svc,
        sqs,
        {"type": "failed", "video_id": failed_id, "reason": "processing_failed",
         "detail": scratch, "version": 1},
        {"type": "rejected", "video_id": rejected_id, "reason": "not_a_video",
         "detail": "no video stream", "version": 1},
        {"type": "rejected", "video_id": rejected_id, "reason": "not_a_video", "version": 1},
        # A processor from before reason codes sent its raw text.
        {"type": "failed", "video_id": legacy_id, "reason": scratch},
    )  # fmt: skip
    assert (await _state(svc, failed_id))[:2] == ("failed", "processing_failed")
    assert (await _state(svc, rejected_id))[:2] == ("rejected", "not_a_video")
    shown = {}
    for video_id in (failed_id, rejected_id, legacy_id):
        detail = await svc.client.get(f"/api/videos/{video_id}", headers=svc.headers())
        shown[video_id] = detail.json()["failure_reason"]
    assert shown == {
        failed_id: messages.FAILURES["processing_failed"],
        rejected_id: messages.FAILURES["not_a_video"],
        legacy_id: messages.FAILURES["processing_failed"],
    }
    # A success that arrives after all (a retry) wins: a video that succeeds ends processed.
    await tools.send_events(svc, sqs, tools.processed_event(failed_id))
    assert (await _state(svc, failed_id))[:2] == ("processed", None)


def _consumed(kind: str, result: str) -> float:
    labels = {"type": kind, "result": result}
    return REGISTRY.get_sample_value("upload_events_consumed_total", labels) or 0.0


async def test_events_for_unknown_videos_and_malformed_events_are_dropped(svc, sqs, tools):
    unknown = str(uuid.uuid4())
    before = {k: _consumed(*k) for k in COUNTED}
    await tools.send_events(
        svc,
        sqs,
        tools.processed_event(unknown),
        {"type": "failed", "video_id": unknown, "reason": "processing_failed"},
        "not json",
        {"type": "processed"},
        {"type": "exploded", "video_id": unknown},
        {"type": "processed", "video_id": "not-a-uuid"},
        {"type": "processed", "video_id": unknown, "version": 99},
    )
    assert await svc.sql("SELECT count(*) FROM videos") == 0
    after = {k: _consumed(*k) for k in COUNTED}
    assert {k: after[k] - before[k] for k in COUNTED} == {
        ("processed", "dropped"): 1,
        ("failed", "dropped"): 1,
        ("unknown", "invalid"): 5,
    }


COUNTED = [("processed", "dropped"), ("failed", "dropped"), ("unknown", "invalid")]


async def test_source_missing_for_a_deleted_video_is_dropped(svc, clips, sqs, tools) -> None:
    video_id = (await svc.upload(clips["ok"])).json()["video_id"]
    deleted = await svc.client.delete(f"/api/videos/{video_id}", headers=svc.headers())
    assert deleted.status_code == 200
    before = _consumed("failed", "dropped")
    missing = {"type": "failed", "video_id": video_id, "reason": "source_missing",
               "detail": "NoSuchKey originals/x.mp4", "version": 1}  # fmt: skip
    await tools.send_events(svc, sqs, missing)
    assert _consumed("failed", "dropped") - before == 1
    assert await svc.sql("SELECT count(*) FROM videos") == 0


def test_every_reason_code_has_a_spanish_message() -> None:
    assert set(messages.FAILURES) == {str(reason) for reason in jobs.Reason}
    assert messages.failure("something ffmpeg said") == messages.FAILURES["processing_failed"]
    assert messages.failure(None) is None


async def test_a_started_job_shows_processing_and_a_late_start_never_undoes_an_outcome(
    svc, clips, sqs, tools
) -> None:
    video_id = (await svc.upload(clips["ok"])).json()["video_id"]
    started = {"type": "started", "video_id": video_id, "version": 1}
    await tools.send_events(svc, sqs, started)
    detail = (await svc.client.get(f"/api/videos/{video_id}", headers=svc.headers())).json()
    assert detail["status"] == "processing"
    assert detail["queue"] is not None  # still waiting for its outcome
    # Every attempt reports its start: a repeat changes nothing.
    await tools.send_events(svc, sqs, started)
    assert (await _state(svc, video_id))[0] == "processing"
    await tools.send_events(svc, sqs, tools.processed_event(video_id))
    assert (await _state(svc, video_id))[0] == "processed"
    # SQS does not keep order: a start that arrives after the outcome is stale.
    before = _consumed("started", "duplicate")
    await tools.send_events(svc, sqs, started)
    assert (await _state(svc, video_id))[0] == "processed"
    assert _consumed("started", "duplicate") - before == 1
    rejected_id = (await svc.upload(clips["ok"])).json()["video_id"]
    await tools.send_events(
        svc, sqs, {"type": "rejected", "video_id": rejected_id, "reason": "not_a_video"}
    )
    await tools.send_events(svc, sqs, {"type": "started", "video_id": rejected_id})
    assert (await _state(svc, rejected_id))[:2] == ("rejected", "not_a_video")


async def test_a_processed_event_naming_keys_outside_that_videos_outputs_is_refused(
    svc, clips, sqs, tools
) -> None:
    """A compromised processor must not turn another video's original (or anything else in
    the bucket) into a public link."""
    victim = (await svc.upload(clips["ok"], headers=svc.headers("victim"))).json()["video_id"]
    video_id = (await svc.upload(clips["ok"])).json()["video_id"]
    before = _consumed("processed", "refused")
    forged = [
        tools.processed_event(video_id, processed_key=f"originals/{victim}.mp4"),
        tools.processed_event(video_id, thumbnail_key=f"processed/{victim}.jpg"),
        tools.processed_event(video_id, processed_key=f"processed/{video_id}.mp4/../x.mp4"),
    ]
    await tools.send_events(svc, sqs, *forged)
    assert _consumed("processed", "refused") - before == 3
    assert (await _state(svc, video_id))[:4] == ("uploaded", None, None, None)
    public = (await svc.client.get("/api/public/videos")).json()
    assert public == []
    # The real outputs are still accepted afterwards.
    await tools.send_events(svc, sqs, tools.processed_event(video_id))
    assert (await _state(svc, video_id))[0] == "processed"
