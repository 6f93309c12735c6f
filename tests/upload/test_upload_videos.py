"""The owner's videos: list, detail, delete, per the contract's status codes."""

from __future__ import annotations

import datetime
import json

import httpx
import pytest

LIST_FIELDS = {"video_id", "title", "status", "uploaded_at", "processed_at", "processed_url"}
DETAIL_FIELDS = {
    "video_id", "title", "status", "uploaded_at", "processed_at", "original_url",
    "processed_url", "votes",
}  # fmt: skip


async def _processed(svc, s3, sqs, tools, video_id: str) -> None:
    """What the processor does: write the outputs, then report them on the events queue."""
    bucket = svc.settings.s3_bucket
    s3.put_object(Bucket=bucket, Key=f"processed/{video_id}.mp4", Body=b"processed-video")
    s3.put_object(Bucket=bucket, Key=f"processed/{video_id}.jpg", Body=b"thumbnail")
    event = {
        "type": "processed",
        "video_id": video_id,
        "processed_key": f"processed/{video_id}.mp4",
        "thumbnail_key": f"processed/{video_id}.jpg",
        "duration_seconds": 30.0,
        "size_bytes": 15,
    }
    sqs.send_message(QueueUrl=svc.settings.events_queue_url, MessageBody=json.dumps(event))

    async def done() -> bool:
        status = await svc.sql("SELECT status FROM videos WHERE id = $1::uuid", video_id)
        return status == "processed"

    await tools.eventually(done, what="processed event applied")


def _utc(value: str) -> datetime.datetime:
    moment = datetime.datetime.fromisoformat(value)
    assert moment.utcoffset() == datetime.timedelta(0)
    return moment


async def test_list_shows_the_callers_videos_newest_first(svc, clips, s3, sqs, tools) -> None:
    first = (await svc.upload(clips["ok"], title="primero")).json()["video_id"]
    second = (await svc.upload(clips["vertical"], title="segundo")).json()["video_id"]
    await svc.upload(clips["ok"], headers=svc.headers(tools.new_id()))  # someone else's
    await _processed(svc, s3, sqs, tools, first)

    response = await svc.client.get("/api/videos", headers=svc.headers())
    assert response.status_code == 200
    videos = response.json()
    assert [v["video_id"] for v in videos] == [second, first]
    # The contract's fields, and one extension: `queue` (tests/upload/test_upload_queue.py).
    assert all(set(v) == LIST_FIELDS | {"queue"} for v in videos)
    newest, oldest = videos
    assert (newest["title"], newest["status"]) == ("segundo", "uploaded")
    assert newest["processed_at"] is None and newest["processed_url"] is None
    assert oldest["status"] == "processed"
    assert _utc(oldest["processed_at"]) >= _utc(oldest["uploaded_at"])
    async with httpx.AsyncClient() as plain:
        download = await plain.get(oldest["processed_url"])
    assert download.content == b"processed-video"


async def test_list_needs_a_token(svc) -> None:
    assert (await svc.client.get("/api/videos")).status_code == 401
    bad = await svc.client.get("/api/videos", headers={"Authorization": "Bearer x.y.z"})
    assert bad.status_code == 401
    assert bad.json() == {"detail": "Token inválido o expirado", "code": "unauthorized"}


async def test_detail_of_an_own_video(svc, clips, s3, sqs, tools) -> None:
    path = clips["ok"]
    video_id = (await svc.upload(path, title="Bandeja")).json()["video_id"]
    response = await svc.client.get(f"/api/videos/{video_id}", headers=svc.headers())
    assert response.status_code == 200
    detail = response.json()
    assert set(detail) >= DETAIL_FIELDS
    assert (detail["video_id"], detail["title"], detail["status"], detail["votes"]) == (
        video_id,
        "Bandeja",
        "uploaded",
        0,
    )
    assert detail["processed_at"] is None and detail["processed_url"] is None
    async with httpx.AsyncClient() as plain:
        original = await plain.get(detail["original_url"])
    assert original.content == path.read_bytes()

    await _processed(svc, s3, sqs, tools, video_id)
    detail = (await svc.client.get(f"/api/videos/{video_id}", headers=svc.headers())).json()
    assert detail["status"] == "processed"
    async with httpx.AsyncClient() as plain:
        assert (await plain.get(detail["processed_url"])).content == b"processed-video"
        assert (await plain.get(detail["thumbnail_url"])).content == b"thumbnail"


async def test_detail_is_403_for_someone_elses_video_and_404_for_unknown_ids(
    svc, clips, tools
) -> None:
    video_id = (await svc.upload(clips["ok"])).json()["video_id"]
    other = svc.headers(tools.new_id())
    forbidden = await svc.client.get(f"/api/videos/{video_id}", headers=other)
    assert forbidden.status_code == 403
    assert forbidden.json()["detail"]
    for missing in (tools.new_id(), "99999", "not-an-id"):
        response = await svc.client.get(f"/api/videos/{missing}", headers=svc.headers())
        assert response.status_code == 404
        assert response.json()["detail"] == "Video no encontrado"
    assert (await svc.client.get(f"/api/videos/{video_id}")).status_code == 401


async def test_finding_10_2_media_base_url_serves_processed_outputs_only(
    service, clips, s3, sqs, tools
):
    async with service(media_base_url="https://cdn.example.com/") as svc:
        pending = (await svc.upload(clips["ok"])).json()["video_id"]
        video_id = (await svc.upload(clips["ok"])).json()["video_id"]
        await _processed(svc, s3, sqs, tools, video_id)
        detail = (await svc.client.get(f"/api/videos/{video_id}", headers=svc.headers())).json()
        # The original is never public: presigned, like everything not yet processed.
        assert detail["original_url"].startswith(svc.settings.aws_endpoint_url)
        assert "X-Amz-Signature=" in detail["original_url"]
        assert detail["processed_url"] == f"https://cdn.example.com/processed/{video_id}.mp4"
        assert detail["thumbnail_url"] == f"https://cdn.example.com/processed/{video_id}.jpg"
        public = (await svc.client.get("/api/public/videos")).json()
        assert [v["processed_url"] for v in public] == [detail["processed_url"]]
        other = (await svc.client.get(f"/api/videos/{pending}", headers=svc.headers())).json()
        assert "X-Amz-Signature=" in other["original_url"]
        assert other["processed_url"] is None


async def test_delete_removes_the_video_and_its_files(svc, clips, s3, sqs, tools) -> None:
    video_id = (await svc.upload(clips["ok"])).json()["video_id"]
    bucket = svc.settings.s3_bucket
    # A failed processing run may have left outputs behind: they go too.
    s3.put_object(Bucket=bucket, Key=f"processed/{video_id}.jpg", Body=b"thumb")
    response = await svc.client.delete(f"/api/videos/{video_id}", headers=svc.headers())
    assert response.status_code == 200
    assert response.json() == {
        "message": "El video ha sido eliminado exitosamente.",
        "video_id": video_id,
    }
    assert tools.keys(s3, bucket) == []
    assert await svc.sql("SELECT count(*) FROM videos") == 0
    assert await svc.sql("SELECT count(*) FROM outbox") == 0
    again = await svc.client.delete(f"/api/videos/{video_id}", headers=svc.headers())
    assert again.status_code == 404


async def test_delete_is_403_for_others_404_for_unknown_401_without_token(
    svc, clips, s3, tools
) -> None:
    video_id = (await svc.upload(clips["ok"])).json()["video_id"]
    other = svc.headers(tools.new_id())
    forbidden = await svc.client.delete(f"/api/videos/{video_id}", headers=other)
    assert forbidden.status_code == 403
    assert (await svc.client.delete(f"/api/videos/{video_id}")).status_code == 401
    for missing in (tools.new_id(), "not-an-id"):
        response = await svc.client.delete(f"/api/videos/{missing}", headers=svc.headers())
        assert response.status_code == 404
    assert await svc.sql("SELECT count(*) FROM videos") == 1
    assert tools.keys(s3, svc.settings.s3_bucket) == [f"originals/{video_id}.mp4"]


async def test_a_processed_video_cannot_be_deleted(svc, clips, s3, sqs, tools) -> None:
    video_id = (await svc.upload(clips["ok"])).json()["video_id"]
    await _processed(svc, s3, sqs, tools, video_id)
    response = await svc.client.delete(f"/api/videos/{video_id}", headers=svc.headers())
    assert response.status_code == 400
    assert "público" in response.json()["detail"]
    assert len(tools.keys(s3, svc.settings.s3_bucket)) == 3


async def test_deleting_while_processing_drops_the_late_result(svc, clips, s3, sqs, tools):
    video_id = (await svc.upload(clips["ok"])).json()["video_id"]
    assert tools.receive_jobs(sqs, svc.settings.jobs_queue_url)  # the processor took the job
    deleted = await svc.client.delete(f"/api/videos/{video_id}", headers=svc.headers())
    assert deleted.status_code == 200

    # The processor finishes afterwards: writes its outputs and reports them.
    bucket = svc.settings.s3_bucket
    for key in (f"processed/{video_id}.mp4", f"processed/{video_id}.jpg"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"late")
    event = {
        "type": "processed",
        "video_id": video_id,
        "processed_key": f"processed/{video_id}.mp4",
        "thumbnail_key": f"processed/{video_id}.jpg",
        "duration_seconds": 25.0,
        "size_bytes": 4,
    }
    sqs.send_message(QueueUrl=svc.settings.events_queue_url, MessageBody=json.dumps(event))

    await tools.eventually(lambda: tools.keys(s3, bucket) == [], what="late outputs removed")
    assert await svc.sql("SELECT count(*) FROM videos") == 0
    listing = await svc.client.get("/api/videos", headers=svc.headers())
    assert listing.json() == []


async def test_a_job_not_yet_sent_is_withdrawn_when_its_video_is_deleted(
    service, clips, sqs, tools, moto_url
) -> None:
    from risingstars.dev.infra import free_port

    # SQS unreachable: the job waits in the outbox; deleting the video withdraws it.
    async with service(aws_endpoint_url_sqs=f"http://127.0.0.1:{free_port()}") as svc:
        video_id = (await svc.upload(clips["ok"])).json()["video_id"]
        assert await svc.sql("SELECT count(*) FROM outbox WHERE kind = 'job'") == 1
        deleted = await svc.client.delete(f"/api/videos/{video_id}", headers=svc.headers())
        assert deleted.status_code == 200
        assert await svc.sql("SELECT count(*) FROM outbox WHERE kind = 'job'") == 0


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "offset=-1", "limit=x"])
async def test_list_parameters_are_validated(svc, query: str) -> None:
    response = await svc.client.get(f"/api/videos?{query}", headers=svc.headers())
    assert response.status_code == 400
    assert response.json()["detail"]
