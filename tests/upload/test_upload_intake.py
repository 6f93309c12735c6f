"""What every upload path shares (intake.py): one reason code for one bad file whichever path
it took, a daily quota that deleting does not refill, open-upload caps that parallel creations
cannot pass, and the one error shape on every answer of the service."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import httpx
import pytest

from risingstars.upload import messages

PART = 5 * 1024 * 1024


async def _direct(svc, path: Path) -> httpx.Response:
    """A whole direct upload of `path`: create, PUT every part, complete."""
    data = path.read_bytes()
    created = await svc.client.post(
        "/api/videos/uploads", headers=svc.headers(), json={"title": "Directo", "size": len(data)}
    )
    assert created.status_code == 201, created.text
    async with httpx.AsyncClient(timeout=30) as client:
        for part in created.json()["parts"]:
            n = part["part_number"]
            put = await client.put(part["url"], content=data[(n - 1) * PART : n * PART])
            assert put.status_code == 200
    return await svc.client.post(
        f"/api/videos/uploads/{created.json()['upload_id']}/complete", headers=svc.headers()
    )


async def _create_at_once(svc, count: int) -> list[httpx.Response]:
    """`count` direct uploads created by one user in parallel."""
    body = {"title": "x", "size": 10}
    return await asyncio.gather(
        *(svc.client.post("/api/videos/uploads", headers=svc.headers(), json=body)
          for _ in range(count))
    )  # fmt: skip


@pytest.mark.parametrize(
    ("clip", "code"),
    [
        ("pdf", "not_mp4"),
        ("short_10s", "too_short"),
        ("long_90s", "too_long"),
        ("hd_720p", "too_small_resolution"),
    ],
)
async def test_a_bad_file_gets_the_same_code_streamed_or_direct(svc, clips, clip, code) -> None:
    streamed = await svc.upload(clips[clip])
    direct = await _direct(svc, clips[clip])
    assert (streamed.status_code, direct.status_code) == (400, 400)
    assert streamed.json()["code"] == direct.json()["code"] == code
    assert streamed.json()["detail"] == direct.json()["detail"]


async def test_deleting_a_video_does_not_give_back_its_daily_quota(service, clips) -> None:
    async with service(worker=False, upload_daily_quota=2) as svc:
        for _ in range(2):
            uploaded = await svc.upload(clips["ok"])
            assert uploaded.status_code == 201
            video_id = uploaded.json()["video_id"]
            deleted = await svc.client.delete(f"/api/videos/{video_id}", headers=svc.headers())
            assert deleted.status_code == 200
        third = await svc.upload(clips["ok"])
        assert third.status_code == 429
        assert third.json() == {"detail": messages.daily_quota(2), "code": "daily_quota"}
        direct = await svc.client.post(
            "/api/videos/uploads", headers=svc.headers(), json={"title": "x", "size": 1000}
        )
        assert direct.status_code == 429


async def test_parallel_direct_creations_stay_within_the_open_upload_cap(
    service, s3, tools
) -> None:
    async with service(worker=False, max_open_uploads_per_user=2) as svc:
        answers = await _create_at_once(svc, 8)
        assert sorted(a.status_code for a in answers) == [201] * 2 + [429] * 6
        assert {a.json()["code"] for a in answers if a.status_code == 429} == {"open_uploads"}
        assert await svc.sql("SELECT count(*) FROM direct_uploads") == 2
        # The refused ones' multipart uploads were aborted.
        assert len(tools.open_uploads(s3, svc.settings.s3_bucket)) == 2


async def test_parallel_creations_stay_within_the_daily_quota(service) -> None:
    async with service(worker=False, upload_daily_quota=3) as svc:
        answers = await _create_at_once(svc, 8)
        assert sorted(a.status_code for a in answers) == [201] * 3 + [429] * 5
        assert await svc.sql("SELECT count(*) FROM direct_uploads") == 3


# -- one error shape --------------------------------------------------------------------------


def _shaped(response: httpx.Response) -> None:
    """A non-2xx answer: `{"detail", "code"}`, both non-empty strings."""
    where = f"{response.request.method} {response.request.url.path} -> {response.status_code}"
    assert response.headers.get("content-type", "").startswith("application/json"), where
    body = response.json()
    assert isinstance(body.get("detail"), str) and body["detail"], where
    assert isinstance(body.get("code"), str) and body["code"], f"{where}: {body}"


def _paths(document: dict, fill: str) -> list[tuple[str, str]]:
    """Every (method, path) of the document, its path parameters filled with `fill`."""
    routes = []
    for template, operations in document["paths"].items():
        path = template
        for name in ("video_id", "upload_id"):
            path = path.replace("{" + name + "}", fill)
        routes += [(method.upper(), path) for method in operations]
    return routes


async def test_every_error_answer_of_the_service_has_detail_and_code(svc, clips) -> None:
    """Walks the service's OpenAPI document: each operation without a token, with ids that are
    malformed or unknown, with bodies that are missing, malformed or too large, and by a method
    it does not allow; then the upload's own error paths. Every non-2xx answer with a body is
    `{"detail", "code"}`."""
    document = svc.app.openapi()
    answers: list[httpx.Response] = []
    seen_statuses: set[int] = set()

    async def call(method: str, path: str, **kwargs) -> None:
        response = await svc.client.request(method, path, **kwargs)
        answers.append(response)

    tus = {"Tus-Resumable": "1.0.0"}
    for fill in ("not-an-id", str(uuid.uuid4())):
        for method, path in _paths(document, fill):
            if method in {"HEAD", "OPTIONS"}:
                continue  # no body by definition (tus answers in headers)
            await call(method, path)  # no token
            await call(method, path, headers={"Authorization": "Bearer not.a.token"})
            await call(method, path, headers=svc.headers() | tus)
            await call(method, path, headers=svc.headers() | tus, content=b"{not json")
            await call(method, path, headers=svc.headers(), json=[1, 2, 3])
            await call(
                method,
                path,
                headers=svc.headers() | {"content-type": "application/json"},
                content=b" " * (70 * 1024),
            )
            await call("PUT", path, headers=svc.headers())  # no route takes PUT
    await call("GET", "/api/no/such/route")
    # The upload's own refusals.
    await call(
        "POST",
        "/api/videos/upload",
        headers=svc.headers() | {"content-length": str(10**12), "content-type": "text/plain"},
        content=b"x",
    )
    await call("POST", "/api/videos/upload", headers=svc.headers(), data={"title": "sin archivo"})
    await call("POST", "/api/public/videos/x/vote", headers=svc.headers())
    await call("GET", "/api/public/videos", params={"after": "x", "limit": 0, "city": ""})
    await call("GET", "/api/public/rankings", params={"city": "\x00"})
    await call("POST", "/api/videos/uploads", headers=svc.headers(), json={"title": "x", "size": 0})
    await call(
        "POST", "/api/videos/uploads", headers=svc.headers(), json={"title": "\x07", "size": 9}
    )
    await call("POST", "/api/videos/tus/", headers=svc.headers())  # no Tus-Resumable
    await call("POST", "/api/videos/tus/", headers=svc.headers() | tus | {"Upload-Length": "x"})
    refused = await svc.upload(clips["pdf"])
    answers.append(refused)

    errors = [a for a in answers if a.status_code >= 400]
    for response in errors:
        seen_statuses.add(response.status_code)
        _shaped(response)
    # The walk reached every kind of refusal it set out to.
    assert {400, 401, 404, 405, 412, 413} <= seen_statuses, seen_statuses
    assert json.dumps(refused.json(), ensure_ascii=False)
