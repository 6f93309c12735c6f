"""What the fault suite and the fuzzers found (docs/reliability.md), kept in the fast suite.

A job the queue dead-lettered with nobody left to report it (the processor died during every
delivery) ends its video `failed`, once; the message stays in the dead-letter queue for people.
A NUL in a city filter is a 400, not a PostgreSQL error."""

from __future__ import annotations

import json

from risingstars import jobs
from risingstars.upload import messages


async def _status(svc, video_id: str):
    return await svc.runtime.pool.fetchrow(
        "SELECT status, failure_reason FROM videos WHERE id = $1::uuid", video_id
    )


def _job(video_id: str) -> str:
    return json.dumps(
        {
            "type": "process",
            "video_id": video_id,
            "source_key": f"originals/{video_id}.mp4",
            "processed_key": f"processed/{video_id}.mp4",
            "thumbnail_key": f"processed/{video_id}.jpg",
        }
    )


async def test_a_dead_lettered_job_fails_its_video_and_stays_for_people(
    svc, clips, sqs, aws, tools
) -> None:
    video_id = (await svc.upload(clips["ok"])).json()["video_id"]
    sqs.send_message(QueueUrl=aws.dlq_url, MessageBody=_job(video_id))

    async def failed():
        row = await _status(svc, video_id)
        return row["status"] == "failed" and row

    row = await tools.eventually(failed, what="the dead-lettered video to fail")
    # The stored reason is the stable code; the owner reads its Spanish message.
    assert row["failure_reason"] == jobs.Reason.ABANDONED
    assert messages.failure(row["failure_reason"]) == messages.FAILURES["abandoned"]
    attrs = sqs.get_queue_attributes(
        QueueUrl=aws.dlq_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    assert (
        attrs["ApproximateNumberOfMessages"],
        attrs["ApproximateNumberOfMessagesNotVisible"],
    ) == (
        "0",
        "1",
    )


async def test_a_nul_in_a_city_filter_is_a_400_not_a_500(svc) -> None:
    # Found by schemathesis (tests/fuzz): PostgreSQL text refuses NUL.
    r = await svc.client.get("/api/public/videos", params={"city": "\x00"})
    assert r.status_code == 400, r.text
    r = await svc.client.get("/api/public/videos", params={"city": "Bogo\x00ta"})
    assert r.status_code == 200, r.text
