"""POST /api/videos/upload: streamed into S3, validated on the way, nothing left behind when
refused."""

from __future__ import annotations

import struct

import pytest
from asgi_scope import upload_scope
from prometheus_client import REGISTRY

from risingstars.upload.settings import MiB

UPLOADED = "Video subido correctamente. Procesamiento en curso."


async def _nothing_left(svc, s3, sqs, tools) -> None:
    bucket = svc.settings.s3_bucket
    assert tools.open_uploads(s3, bucket) == []
    assert tools.keys(s3, bucket) == []
    assert await svc.sql("SELECT count(*) FROM videos") == 0
    assert await svc.sql("SELECT count(*) FROM outbox") == 0
    assert tools.receive_jobs(sqs, svc.settings.jobs_queue_url) == []


@pytest.mark.parametrize("clip", ["ok", "ok_faststart", "vertical", "big"])
async def test_an_accepted_upload_is_stored_whole_recorded_and_enqueued(
    svc, clips, s3, sqs, tools, clip
) -> None:
    path = clips[clip]
    headers = svc.headers(username="lucia", city="Medellín")
    response = await svc.upload(path, title="  Triple  desde media cancha ", headers=headers)

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["message"] == UPLOADED
    assert body["task_id"] == body["video_id"]
    video_id = body["video_id"]
    key = f"originals/{video_id}.mp4"
    stored = s3.get_object(Bucket=svc.settings.s3_bucket, Key=key)
    assert stored["Body"].read() == path.read_bytes()
    assert stored["ContentType"] == "video/mp4"
    assert tools.open_uploads(s3, svc.settings.s3_bucket) == []

    row = (await svc.rows("SELECT * FROM videos"))[0]
    assert str(row["id"]) == video_id
    assert (row["user_id"], row["username"], row["city"]) == (svc.user, "lucia", "Medellín")
    assert (row["status"], row["title"], row["city_key"]) == (
        "uploaded",
        "Triple desde media cancha",
        "medellin",
    )
    assert row["size_bytes"] == path.stat().st_size
    # Enqueued before the answer: the job is in the queue and the outbox is empty.
    assert tools.receive_jobs(sqs, svc.settings.jobs_queue_url) == [
        {
            "type": "process",
            "video_id": video_id,
            "source_key": key,
            "processed_key": f"processed/{video_id}.mp4",
            "thumbnail_key": f"processed/{video_id}.jpg",
            "version": 1,
        }
    ]
    assert await svc.sql("SELECT count(*) FROM outbox") == 0


@pytest.mark.parametrize(
    ("clip", "detail"),
    [
        ("pdf", "no es un video MP4"),
        ("truncated", "incompleto o dañado"),
        ("short_10s", "duración del video (10.0 s)"),
        ("long_90s", "duración del video (90.0 s)"),
        ("long_90s_faststart", "duración del video (90.0 s)"),
        ("hd_720p", "resolución del video (1280x720)"),
    ],
)
async def test_refused_files_leave_no_upload_no_object_and_no_row(
    svc, clips, s3, sqs, tools, clip, detail
) -> None:
    response = await svc.upload(clips[clip])
    assert response.status_code == 400
    assert detail in response.json()["detail"]
    await _nothing_left(svc, s3, sqs, tools)


async def test_a_pdf_renamed_mp4_is_refused(svc, clips, s3, sqs, tools, tmp_path) -> None:
    renamed = tmp_path / "jugada.mp4"
    renamed.write_bytes(clips["pdf"].read_bytes())
    response = await svc.upload(renamed)
    assert response.status_code == 400
    assert response.json()["detail"] == "El archivo no es un video MP4 válido"
    assert response.json()["code"]
    await _nothing_left(svc, s3, sqs, tools)


async def test_over_the_configured_limit_by_content_length(service, clips, s3, sqs, tools) -> None:
    path = clips["big"]
    async with service(max_upload_bytes=path.stat().st_size - MiB) as svc:
        response = await svc.upload(path)
        assert response.status_code == 400
        assert "tamaño máximo" in response.json()["detail"]
        await _nothing_left(svc, s3, sqs, tools)


async def test_over_the_configured_limit_while_streaming(service, clips, s3, sqs, tools) -> None:
    # No Content-Length: the limit is found while the parts are already going to S3.
    data = clips["big"].read_bytes()
    async with service(max_upload_bytes=len(data) - MiB) as svc:
        content_type, body = tools.multipart_body(
            [
                ("title", None, b"demasiado grande"),
                (
                    "video_file",
                    "big.mp4",
                    (data[i : i + 65536] for i in range(0, len(data), 65536)),
                ),
            ]
        )
        response = await svc.client.post(
            "/api/videos/upload",
            headers={**svc.headers(), "Content-Type": content_type},
            content=body,
        )
        assert response.status_code == 400
        assert "tamaño máximo permitido de" in response.json()["detail"]
        await _nothing_left(svc, s3, sqs, tools)


async def test_a_body_past_100_mb_stops_being_read_at_the_default_limit(
    svc, s3, sqs, tools
) -> None:
    assert svc.settings.max_upload_bytes == 104_857_600
    ftyp = struct.pack(">I4s", 16, b"ftyp") + b"isom" + bytes(4)
    padding = struct.pack(">I4s", MiB, b"free") + bytes(MiB - 8)
    sent = 0

    def file_chunks():
        nonlocal sent
        yield ftyp
        for _ in range(150):  # 150 MiB if nobody stopped reading
            sent += len(padding)
            yield padding

    content_type, body = tools.multipart_body(
        [("title", None, b"relleno"), ("video_file", "relleno.mp4", file_chunks())]
    )
    response = await svc.client.post(
        "/api/videos/upload",
        headers={**svc.headers(), "Content-Type": content_type},
        content=body,
    )
    assert response.status_code == 400
    assert response.json()["detail"] == "El archivo supera el tamaño máximo permitido de 100 MB"
    assert 100 * MiB <= sent <= 102 * MiB
    await _nothing_left(svc, s3, sqs, tools)


async def test_the_title_may_come_after_the_file(svc, clips, tools) -> None:
    data = clips["ok"].read_bytes()
    content_type, body = tools.multipart_body(
        [("video_file", "ok.mp4", data), ("title", None, "Clavada ñandú".encode())]
    )
    response = await svc.client.post(
        "/api/videos/upload", headers={**svc.headers(), "Content-Type": content_type}, content=body
    )
    assert response.status_code == 201, response.text
    assert await svc.sql("SELECT title FROM videos") == "Clavada ñandú"


@pytest.mark.parametrize(
    ("parts", "detail"),
    [
        ([("title", None, b"solo titulo")], "Campo requerido: video_file"),
        ([("video_file", "ok.mp4", "CLIP")], "Campo requerido: title"),
        ([("title", None, b"   "), ("video_file", "ok.mp4", "CLIP")], "título"),
        ([("title", None, b"x" * 201), ("video_file", "ok.mp4", "CLIP")], "título"),
        (
            [("title", None, b"t"), ("video_file", "a.mp4", "CLIP"), ("video_file", "b.mp4", b"")],
            "Solo se admite un archivo",
        ),
        ([("title", None, b"t"), ("notas", None, b"n" * 20_000)], "demasiado grandes"),
    ],
)
async def test_form_problems_are_400(svc, clips, s3, sqs, tools, parts, detail) -> None:
    clip = clips["ok"].read_bytes()
    parts = [(n, f, clip if c == "CLIP" else c) for n, f, c in parts]
    content_type, body = tools.multipart_body(parts)
    response = await svc.client.post(
        "/api/videos/upload", headers={**svc.headers(), "Content-Type": content_type}, content=body
    )
    assert response.status_code == 400
    assert detail in response.json()["detail"]
    await _nothing_left(svc, s3, sqs, tools)


async def test_bodies_that_are_not_a_complete_form_are_400(svc, clips, s3, sqs, tools) -> None:
    headers = svc.headers()
    not_form = await svc.client.post(
        "/api/videos/upload", headers=headers, json={"title": "x", "video_file": "x"}
    )
    assert not_form.status_code == 400
    assert "multipart/form-data" in not_form.json()["detail"]

    content_type, body = tools.multipart_body(
        [("title", None, b"t"), ("video_file", "ok.mp4", clips["ok"].read_bytes())]
    )
    cut = b"".join([chunk async for chunk in body])[:-30]  # no closing boundary
    truncated = await svc.client.post(
        "/api/videos/upload", headers={**headers, "Content-Type": content_type}, content=cut
    )
    assert truncated.status_code == 400
    assert "mal formado" in truncated.json()["detail"]
    await _nothing_left(svc, s3, sqs, tools)


async def test_without_a_valid_token_401_and_the_body_is_not_read(svc, clips, tools) -> None:
    read = 0

    def chunks():
        nonlocal read
        for _ in range(10):
            read += 1
            yield b"x" * 1000

    content_type, body = tools.multipart_body([("video_file", "a.mp4", chunks())])
    for headers in (
        {},
        {"Authorization": "Bearer not-a-token"},
        svc.tokens.headers(ttl=-3600),
    ):
        response = await svc.client.post(
            "/api/videos/upload", headers={**headers, "Content-Type": content_type}, content=body
        )
        assert response.status_code == 401
        assert response.json()["detail"]
    assert read == 0


async def test_a_client_that_disconnects_mid_upload_leaves_nothing(
    svc, clips, s3, sqs, tools
) -> None:
    data = clips["big"].read_bytes()
    content_type, body = tools.multipart_body(
        [("title", None, b"cortado"), ("video_file", "big.mp4", data)]
    )
    raw = b"".join([chunk async for chunk in body])
    chunks = [raw[i : i + 65536] for i in range(0, 9 * MiB, 65536)]  # past the first part
    messages = [{"type": "http.request", "body": c, "more_body": True} for c in chunks]
    messages.append({"type": "http.disconnect"})
    sent: list[dict] = []

    async def receive():
        return messages.pop(0)

    async def send(message):
        sent.append(message)

    auth = svc.headers()["Authorization"]
    scope = upload_scope([
        (b"host", b"upload.test"),
        (b"authorization", auth.encode()),
        (b"content-type", content_type.encode()),
    ])  # fmt: skip
    await svc.app(scope, receive, send)
    assert messages == []  # read up to the disconnect
    await _nothing_left(svc, s3, sqs, tools)


def _samples() -> dict[str, float]:
    def value(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    return {
        "accepted": value("upload_uploads_total", outcome="accepted", path="stream", reason="ok"),
        "not_mp4": value(
            "upload_uploads_total", outcome="rejected", path="stream", reason="not_mp4"
        ),
        "bytes": value("upload_bytes_ingested_total"),
        "timed_accepted": value("upload_duration_seconds_count", outcome="accepted"),
        "timed_rejected": value("upload_duration_seconds_count", outcome="rejected"),
    }


async def test_upload_metrics_count_outcomes_and_bytes(svc, clips) -> None:
    before = _samples()
    assert (await svc.upload(clips["ok"])).status_code == 201
    assert (await svc.upload(clips["pdf"])).status_code == 400
    after = _samples()
    delta = {name: after[name] - before[name] for name in after}
    assert delta == {
        "accepted": 1,
        "not_mp4": 1,
        "bytes": clips["ok"].stat().st_size,
        "timed_accepted": 1,
        "timed_rejected": 1,
    }
    text = (await svc.client.get("/metrics")).text
    assert "upload_uploads_total" in text and "upload_outbox_backlog" in text


async def test_storage_unreachable_is_503_and_nothing_is_recorded(service, clips, moto_url) -> None:
    from risingstars.dev.infra import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    async with service(worker=False, aws_endpoint_url=dead, aws_endpoint_url_sqs=moto_url) as svc:
        response = await svc.upload(clips["big"])
        assert response.status_code == 503
        assert response.json() == {
            "detail": "El almacenamiento no está disponible. Intente de nuevo más tarde.",
            "code": "unavailable",
        }
        assert response.headers["retry-after"]
        assert await svc.sql("SELECT count(*) FROM videos") == 0
        assert svc.runtime.buffers.in_use == 0
        ready = await svc.client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["s3"].startswith("failing")
