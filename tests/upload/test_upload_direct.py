"""Direct-to-S3 uploads (extension): presigned parts, resume after a dropped part, completion
checked with ranged reads, cancel, and the cleanup of abandoned uploads."""

from __future__ import annotations

import math

import httpx
import pytest

from risingstars.upload.settings import MiB

PART = 5 * MiB


class DroppedConnection(Exception):
    pass


async def _create(svc, path, headers=None, title="Directo") -> dict:
    response = await svc.client.post(
        "/api/videos/uploads",
        headers=headers or svc.headers(),
        json={"title": title, "size": path.stat().st_size},
    )
    assert response.status_code == 201, response.text
    return response.json()


async def _put(url: str, data: bytes) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as s3_client:
        return await s3_client.put(url, content=data)


def _slice(data: bytes, number: int) -> bytes:
    return data[(number - 1) * PART : number * PART]


async def test_a_direct_upload_resumes_after_a_dropped_part(svc, clips, s3, sqs, tools) -> None:
    path = clips["big"]
    data = path.read_bytes()
    created = await _create(svc, path)
    parts = created["parts"]
    assert created["part_size"] == PART
    assert len(parts) == math.ceil(len(data) / PART) == 3
    assert [p["size"] for p in parts] == [PART, PART, len(data) - 2 * PART]
    assert not any(p["uploaded"] for p in parts)

    assert (await _put(parts[0]["url"], _slice(data, 1))).status_code == 200

    # Part 2's connection drops halfway.
    async def half_then_drop():
        yield _slice(data, 2)[: PART // 2]
        raise DroppedConnection

    with pytest.raises((DroppedConnection, httpx.HTTPError)):
        async with httpx.AsyncClient(timeout=30) as s3_client:
            await s3_client.put(
                parts[1]["url"], content=half_then_drop(), headers={"Content-Length": str(PART)}
            )

    status = await svc.client.get(
        f"/api/videos/uploads/{created['upload_id']}", headers=svc.headers()
    )
    assert status.status_code == 200
    resumed = status.json()["parts"]
    assert [p["uploaded"] for p in resumed] == [True, False, False]
    assert "url" not in resumed[0]

    early = await svc.client.post(
        f"/api/videos/uploads/{created['upload_id']}/complete", headers=svc.headers()
    )
    assert early.status_code == 400
    assert "2, 3" in early.json()["detail"]

    for part in resumed[1:]:
        response = await _put(part["url"], _slice(data, part["part_number"]))
        assert response.status_code == 200

    done = await svc.client.post(
        f"/api/videos/uploads/{created['upload_id']}/complete", headers=svc.headers()
    )
    assert done.status_code == 201, done.text
    body = done.json()
    assert body["video_id"] == body["task_id"] == created["video_id"]
    assert body["message"] == "Video subido correctamente. Procesamiento en curso."
    bucket = svc.settings.s3_bucket
    stored = s3.get_object(Bucket=bucket, Key=f"originals/{created['video_id']}.mp4")
    assert stored["Body"].read() == data
    assert tools.open_uploads(s3, bucket) == []
    (job,) = tools.receive_jobs(sqs, svc.settings.jobs_queue_url)
    assert job["video_id"] == created["video_id"]
    listing = (await svc.client.get("/api/videos", headers=svc.headers())).json()
    assert [(v["video_id"], v["title"], v["status"]) for v in listing] == [
        (created["video_id"], "Directo", "uploaded")
    ]
    gone = await svc.client.get(
        f"/api/videos/uploads/{created['upload_id']}", headers=svc.headers()
    )
    assert gone.status_code == 404


async def test_a_part_of_the_wrong_size_must_be_sent_again(svc, clips) -> None:
    path = clips["ok"]  # one part
    created = await _create(svc, path)
    assert (await _put(created["parts"][0]["url"], path.read_bytes()[:-1])).status_code == 200
    status = (
        await svc.client.get(f"/api/videos/uploads/{created['upload_id']}", headers=svc.headers())
    ).json()
    assert status["parts"][0]["uploaded"] is False
    response = await svc.client.post(
        f"/api/videos/uploads/{created['upload_id']}/complete", headers=svc.headers()
    )
    assert response.status_code == 400
    assert "tamaño esperado" in response.json()["detail"]


@pytest.mark.parametrize(
    ("clip", "detail"),
    [("hd_720p", "resolución"), ("long_90s", "duración"), ("truncated", "incompleto")],
)
async def test_completion_checks_the_stored_mp4(svc, clips, s3, tools, clip, detail) -> None:
    path = clips[clip]
    data = path.read_bytes()
    created = await _create(svc, path)
    for part in created["parts"]:
        assert (await _put(part["url"], _slice(data, part["part_number"]))).status_code == 200
    response = await svc.client.post(
        f"/api/videos/uploads/{created['upload_id']}/complete", headers=svc.headers()
    )
    assert response.status_code == 400
    assert detail in response.json()["detail"]
    bucket = svc.settings.s3_bucket
    assert tools.keys(s3, bucket) == []
    assert tools.open_uploads(s3, bucket) == []
    assert await svc.sql("SELECT count(*) FROM videos") == 0
    assert await svc.sql("SELECT count(*) FROM direct_uploads") == 0


async def test_cancel_aborts_the_multipart_upload(svc, clips, s3, tools) -> None:
    path = clips["big"]
    created = await _create(svc, path)
    await _put(created["parts"][0]["url"], _slice(path.read_bytes(), 1))
    bucket = svc.settings.s3_bucket
    assert len(tools.open_uploads(s3, bucket)) == 1
    url = f"/api/videos/uploads/{created['upload_id']}"
    response = await svc.client.delete(url, headers=svc.headers())
    assert response.status_code == 200
    assert response.json()["upload_id"] == created["upload_id"]
    assert tools.open_uploads(s3, bucket) == []
    assert (await svc.client.get(url, headers=svc.headers())).status_code == 404
    assert (await svc.client.delete(url, headers=svc.headers())).status_code == 404


async def test_someone_elses_upload_is_403_and_unknown_ids_404(svc, clips, tools) -> None:
    created = await _create(svc, clips["ok"])
    other = svc.headers(tools.new_id())
    base = f"/api/videos/uploads/{created['upload_id']}"
    assert (await svc.client.get(base, headers=other)).status_code == 403
    assert (await svc.client.post(f"{base}/complete", headers=other)).status_code == 403
    assert (await svc.client.delete(base, headers=other)).status_code == 403
    for missing in (tools.new_id(), "not-an-id"):
        url = f"/api/videos/uploads/{missing}"
        assert (await svc.client.get(url, headers=svc.headers())).status_code == 404
        assert (await svc.client.post(f"{url}/complete", headers=svc.headers())).status_code == 404
    assert (await svc.client.get(base)).status_code == 401
    assert (
        await svc.client.post("/api/videos/uploads", json={"title": "t", "size": 1})
    ).status_code == 401


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"title": "t", "size": 104_857_601}, "tamaño máximo"),
        ({"title": "t", "size": 0}, "size"),
        ({"title": " ", "size": 10}, "título"),
        ({"title": "t" * 201, "size": 10}, "título"),
        ({"size": 10}, "title"),
        ({"title": "t", "size": "big"}, "size"),
    ],
)
async def test_new_upload_requests_are_validated(svc, body, detail) -> None:
    response = await svc.client.post("/api/videos/uploads", headers=svc.headers(), json=body)
    assert response.status_code == 400
    assert detail in response.json()["detail"]


async def test_json_bodies_of_the_direct_upload_endpoints_are_limited(svc) -> None:
    response = await svc.client.post(
        "/api/videos/uploads",
        headers={**svc.headers(), "Content-Type": "application/json"},
        content=b'{"title": "' + b"x" * 100_000 + b'", "size": 1}',
    )
    assert response.status_code == 413


async def test_abandoned_uploads_are_aborted_by_the_cleanup(svc, clips, s3, tools) -> None:
    bucket = svc.settings.s3_bucket
    created = await _create(svc, clips["big"])
    status_url = f"/api/videos/uploads/{created['upload_id']}"
    # A streaming upload's multipart upload left by a process that died mid-stream (moto dates
    # every upload 2010), and one an API replica is streaming into right now (a fresh part).
    s3.create_multipart_upload(Bucket=bucket, Key=f"originals/{tools.new_id()}.mp4")
    streaming = f"originals/{tools.new_id()}.mp4"
    live = s3.create_multipart_upload(Bucket=bucket, Key=streaming)
    s3.upload_part(
        Bucket=bucket, Key=streaming, UploadId=live["UploadId"], PartNumber=1, Body=b"x" * 1024
    )
    assert len(tools.open_uploads(s3, bucket)) == 3

    await svc.worker.sweeper.sweep(orphan_age_seconds=600)  # the direct upload is young
    assert (await svc.client.get(status_url, headers=svc.headers())).status_code == 200
    assert len(tools.open_uploads(s3, bucket)) == 2

    await svc.worker.sweeper.sweep(max_age_seconds=0, orphan_age_seconds=600)
    assert [u["Key"] for u in tools.open_uploads(s3, bucket)] == [streaming]
    assert (await svc.client.get(status_url, headers=svc.headers())).status_code == 404
