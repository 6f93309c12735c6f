"""tus 1.0 resumable uploads: the protocol's answers, bytes kept across requests (the incomplete
part as a tail object), any replica continuing an upload, and the same checks and outcome as a
streamed upload once the last byte arrives."""

from __future__ import annotations

import base64
import itertools

import pytest

from risingstars.kit import errors
from risingstars.upload import tus

MiB = 1024 * 1024

TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = {**TUS, "Content-Type": "application/offset+octet-stream"}


def metadata(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


async def create(svc, size: int, headers=None, title="Tiro libre") -> str:
    response = await svc.client.post(
        "/api/videos/tus/",
        headers={**(headers or svc.headers()), **TUS, "Upload-Length": str(size),
                 "Upload-Metadata": metadata(title=title, filename="clip.mp4")},
    )  # fmt: skip
    assert response.status_code == 201, response.text
    assert response.headers["Upload-Offset"] == "0" and response.headers["Upload-Expires"]
    return response.headers["Location"]


async def patch(svc, location: str, offset: int, data: bytes, headers=None):
    return await svc.client.patch(
        location,
        headers={**(headers or svc.headers()), **OCTETS, "Upload-Offset": str(offset)},
        content=data,
    )


async def head_offset(svc, location: str) -> int:
    response = await svc.client.head(location, headers={**svc.headers(), **TUS})
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    return int(response.headers["Upload-Offset"])


async def test_capabilities_are_announced_without_a_token(svc) -> None:
    response = await svc.client.options("/api/videos/tus/")
    assert response.status_code == 204
    assert response.headers["Tus-Version"] == "1.0.0"
    assert set(response.headers["Tus-Extension"].split(",")) == {
        "creation", "creation-with-upload", "termination", "expiration"
    }  # fmt: skip
    assert int(response.headers["Tus-Max-Size"]) == svc.settings.max_upload_bytes


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({"Upload-Length": "10"}, 412, "tus_version"),  # no Tus-Resumable
        ({**TUS}, 400, "invalid"),  # no Upload-Length
        ({**TUS, "Upload-Length": "-5"}, 400, "invalid"),
        ({**TUS, "Upload-Length": "0"}, 400, "invalid"),
        ({**TUS, "Upload-Defer-Length": "1"}, 400, "invalid"),
        ({**TUS, "Upload-Length": str(200 * 1024 * 1024)}, 413, "too_large"),
        ({**TUS, "Upload-Length": "10", "Upload-Metadata": "title %%%"}, 400, "invalid"),
        ({**TUS, "Upload-Length": "10", "Upload-Metadata": metadata(filename="")}, 400, "invalid"),
    ],
)
async def test_bad_creations_are_refused_with_a_reason(
    svc, headers, status, code, tools, s3
) -> None:
    before = len(tools.open_uploads(s3, svc.settings.s3_bucket))
    response = await svc.client.post("/api/videos/tus/", headers={**svc.headers(), **headers})
    assert response.status_code == status, response.text
    # The kit's error body, like every other answer, and tus's header on it.
    assert response.json()["detail"] and response.json()["code"] == code
    assert response.headers["Tus-Resumable"] == tus.VERSION
    assert len(tools.open_uploads(s3, svc.settings.s3_bucket)) == before


async def test_a_token_is_required(svc) -> None:
    response = await svc.client.post("/api/videos/tus/", headers={**TUS, "Upload-Length": "10"})
    assert response.status_code == 401


async def test_an_upload_in_pieces_becomes_a_video_with_its_job(svc, clips, tools, s3, sqs):
    data = clips["big"].read_bytes()
    location = await create(svc, len(data))
    # Uneven pieces: a small one, one crossing a part boundary, then the rest.
    cuts = [0, 100_000, 7 * 1024 * 1024, len(data)]
    for start, end in itertools.pairwise(cuts):
        response = await patch(svc, location, start, data[start:end])
        assert response.status_code == 204, response.text
        assert int(response.headers["Upload-Offset"]) == end
        assert await head_offset(svc, location) == end
    video_id = response.headers["Video-Id"]
    assert response.headers["Task-Id"] == video_id

    row = await svc.runtime.pool.fetchrow("SELECT * FROM videos WHERE id = $1::uuid", video_id)
    assert row["status"] == "uploaded" and row["title"] == "Tiro libre"
    assert row["size_bytes"] == len(data) and row["user_id"] == svc.user
    bucket = svc.settings.s3_bucket
    stored = tools.keys(s3, bucket)
    assert f"originals/{video_id}.mp4" in stored and not [k for k in stored if k.startswith("tus/")]
    assert s3.head_object(Bucket=bucket, Key=f"originals/{video_id}.mp4")["ContentLength"] == len(
        data
    )

    async def job_sent() -> bool:
        jobs = tools.receive_jobs(sqs, svc.settings.jobs_queue_url)
        return any(j["video_id"] == video_id for j in jobs)

    await tools.eventually(job_sent)
    # Asked again after the end, the upload says it is complete and names its video.
    finished = await svc.client.head(location, headers={**svc.headers(), **TUS})
    assert finished.headers["Upload-Offset"] == str(len(data))
    assert finished.headers["Video-Id"] == video_id


async def test_offsets_and_content_types_are_enforced(svc, clips) -> None:
    data = clips["big"].read_bytes()
    location = await create(svc, len(data))
    assert (await patch(svc, location, 5, data[5:100])).status_code == 409
    wrong_type = await svc.client.patch(
        location,
        headers={**svc.headers(), **TUS, "Upload-Offset": "0", "Content-Type": "video/mp4"},
        content=data[:100],
    )
    assert wrong_type.status_code == 415
    assert (await patch(svc, location, 0, data[: len(data) + 1] + b"x")).status_code == 400
    assert await head_offset(svc, location) == 0


async def test_someone_elses_upload_does_not_exist_for_you(svc, clips) -> None:
    data = clips["big"].read_bytes()
    location = await create(svc, len(data))
    stranger = svc.headers("someone-else")
    assert (await svc.client.head(location, headers={**stranger, **TUS})).status_code == 404
    assert (await patch(svc, location, 0, data[:100], headers=stranger)).status_code == 404
    gone = await svc.client.head("/api/videos/tus/not-an-id", headers={**svc.headers(), **TUS})
    assert gone.status_code == 404


async def test_any_replica_continues_an_upload_another_started(service, clips, tokens) -> None:
    data = clips["big"].read_bytes()
    half = len(data) // 2
    async with service() as first, service() as second:
        second.user = first.user
        location = await create(first, len(data))
        assert (await patch(first, location, 0, data[:half])).status_code == 204
        assert await head_offset(second, location) == half
        done = await patch(second, location, half, data[half:])
        assert done.status_code == 204, done.text
        video_id = done.headers["Video-Id"]
        assert await first.sql("SELECT count(*) FROM videos WHERE id = $1::uuid", video_id) == 1


async def test_bytes_of_a_dropped_request_are_kept(svc, clips, tools, s3) -> None:
    from starlette.requests import ClientDisconnect

    data = clips["big"].read_bytes()
    location = await create(svc, len(data))
    sent = 6 * 1024 * 1024

    async def drops_after_six_mib():
        yield data[: sent // 2]
        yield data[sent // 2 : sent]
        raise ClientDisconnect

    with pytest.raises(ClientDisconnect):
        async with svc.runtime.tus.leased(_id(location), svc.user) as upload:
            await svc.runtime.tus.append(upload, 0, drops_after_six_mib())
    # One whole part went to S3, the rest of what arrived waits in the tail object.
    assert await head_offset(svc, location) == sent
    assert len(tails(tools, s3, svc, location)) == 1
    done = await patch(svc, location, sent, data[sent:])
    assert done.status_code == 204, done.text
    row = await svc.runtime.pool.fetchrow(
        "SELECT size_bytes FROM videos WHERE id = $1::uuid", done.headers["Video-Id"]
    )
    assert row["size_bytes"] == len(data)
    key = f"originals/{done.headers['Video-Id']}.mp4"
    assert s3.get_object(Bucket=svc.settings.s3_bucket, Key=key)["Body"].read() == data


@pytest.mark.parametrize("clip", ["pdf", "truncated"])
async def test_an_invalid_file_is_refused_and_leaves_nothing(svc, clips, clip, tools, s3) -> None:
    data = clips[clip].read_bytes()
    bucket = svc.settings.s3_bucket
    before = (tools.keys(s3, bucket), len(tools.open_uploads(s3, bucket)))
    videos = await svc.sql("SELECT count(*) FROM videos")
    location = await create(svc, len(data))
    response = await patch(svc, location, 0, data)
    assert response.status_code == 400 and response.json()["detail"]
    assert await svc.sql("SELECT count(*) FROM videos") == videos
    if clip == "truncated":  # refused at the end: the upload and its bytes are gone
        assert (tools.keys(s3, bucket), len(tools.open_uploads(s3, bucket))) == before
        gone = await svc.client.head(location, headers={**svc.headers(), **TUS})
        assert gone.status_code == 404


async def test_termination_removes_the_bytes(svc, clips, tools, s3) -> None:
    data = clips["big"].read_bytes()
    bucket = svc.settings.s3_bucket
    before = len(tools.open_uploads(s3, bucket))
    location = await create(svc, len(data))
    assert (await patch(svc, location, 0, data[: 6 * 1024 * 1024])).status_code == 204
    response = await svc.client.delete(location, headers={**svc.headers(), **TUS})
    assert response.status_code == 204
    assert len(tools.open_uploads(s3, bucket)) == before
    assert tails(tools, s3, svc, location) == []
    assert (await svc.client.head(location, headers={**svc.headers(), **TUS})).status_code == 404


async def test_expired_uploads_are_removed(svc, clips, tools, s3) -> None:
    data = clips["big"].read_bytes()
    bucket = svc.settings.s3_bucket
    before = len(tools.open_uploads(s3, bucket))
    location = await create(svc, len(data))
    assert (await patch(svc, location, 0, data[:1000])).status_code == 204
    await svc.runtime.pool.execute(
        "UPDATE tus_uploads SET expires_at = now() - interval '1 second' WHERE id = $1",
        _id(location),
    )
    assert (await svc.client.head(location, headers={**svc.headers(), **TUS})).status_code == 410
    assert await svc.runtime.tus.expire() >= 1
    assert len(tools.open_uploads(s3, bucket)) == before
    assert tails(tools, s3, svc, location) == []
    assert (await svc.client.head(location, headers={**svc.headers(), **TUS})).status_code == 404


async def test_open_uploads_per_user_are_capped(service) -> None:
    async with service(max_open_uploads_per_user=2) as svc:
        await create(svc, 1000)
        await create(svc, 1000)
        response = await svc.client.post(
            "/api/videos/tus/",
            headers={**svc.headers(), **TUS, "Upload-Length": "1000",
                     "Upload-Metadata": metadata(title="Otra")},
        )  # fmt: skip
        assert response.status_code == 429 and response.json()["detail"]


def test_metadata_is_parsed_as_the_protocol_defines() -> None:
    assert tus.parse_metadata(metadata(title="Año", filename="a.mp4") + ",flag") == {
        "title": "Año", "filename": "a.mp4", "flag": ""
    }  # fmt: skip
    for bad in ["title", "title a,title b", "title ***", " ,"]:
        with pytest.raises(errors.Invalid):
            tus.parse_metadata(bad if bad != "title" else "title a b")


def _id(location: str):
    import uuid

    return uuid.UUID(location.rsplit("/", 1)[1])


def tails(tools, s3, svc, location: str) -> list[str]:
    prefix = f"tus/{_id(location)}/"
    return [k for k in tools.keys(s3, svc.settings.s3_bucket) if k.startswith(prefix)]


async def pieces(*chunks: bytes):
    for chunk in chunks:
        yield chunk


async def test_one_request_at_a_time_per_upload_others_are_423_at_once(svc, clips) -> None:
    data = clips["big"].read_bytes()
    location = await create(svc, len(data))
    async with svc.runtime.tus.leased(_id(location), svc.user):
        # A PATCH is running: another PATCH, or a DELETE racing it, is refused at once.
        busy = await patch(svc, location, 0, data[:MiB])
        assert busy.status_code == 423, busy.text
        assert busy.json()["code"] == "locked" and busy.headers["Tus-Resumable"] == "1.0.0"
        assert (
            await svc.client.delete(location, headers={**svc.headers(), **TUS})
        ).status_code == 423
        assert await head_offset(svc, location) == 0  # HEAD is never locked out
    done = await patch(svc, location, 0, data)
    assert done.status_code == 204, done.text


async def test_a_lease_is_short_and_renewed_while_its_request_runs(
    svc, clips, tools, monkeypatch
) -> None:
    # A lease once lasted the request's whole deadline (about 33 min), so an upload whose
    # request died with its process answered 423 that long; tus clients give up in seconds.
    monkeypatch.setattr(tus, "LEASE_SECONDS", 1.0)
    data = clips["big"].read_bytes()
    location = await create(svc, len(data))
    lease_end = "SELECT patch_until FROM tus_uploads WHERE id = $1"
    async with svc.runtime.tus.leased(_id(location), svc.user):
        start = await svc.sql("SELECT now()")
        assert ((await svc.sql(lease_end, _id(location))) - start).total_seconds() <= 1.0

        async def held_three_lease_lengths() -> bool:
            return ((await svc.sql(lease_end, _id(location))) - start).total_seconds() > 3.0

        await tools.eventually(held_three_lease_lengths, timeout=15, what="the lease renewed")
        assert (await patch(svc, location, 0, data[:MiB])).status_code == 423  # still held
    done = await patch(svc, location, 0, data)
    assert done.status_code == 204, done.text


async def test_a_request_that_lost_its_lease_cannot_overwrite_the_winners_tail(
    svc, clips, tools, s3
) -> None:
    data = clips["big"].read_bytes()
    location = await create(svc, len(data))
    tus_uploads, upload_id = svc.runtime.tus, _id(location)
    async with tus_uploads.leased(upload_id, svc.user) as loser:
        # Its process stalls past the lease; another request takes the upload and appends.
        await svc.runtime.pool.execute(
            "UPDATE tus_uploads SET patch_until = now() - interval '1 second' WHERE id = $1",
            upload_id,
        )
        async with tus_uploads.leased(upload_id, svc.user) as winner:
            await tus_uploads.append(winner, 0, pieces(data[:MiB]))
        # The loser wakes up with as many bytes, but different ones.
        with pytest.raises(errors.Conflict):
            await tus_uploads.append(loser, 0, pieces(data[:8] + bytes(MiB - 8)))
    assert len(tails(tools, s3, svc, location)) == 1  # the winner's, untouched
    done = await patch(svc, location, MiB, data[MiB:])
    assert done.status_code == 204, done.text
    key = f"originals/{done.headers['Video-Id']}.mp4"
    assert s3.get_object(Bucket=svc.settings.s3_bucket, Key=key)["Body"].read() == data
    assert tails(tools, s3, svc, location) == []


FAIL_VIDEO_INSERT = """
CREATE FUNCTION pg_temp_fail() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN RAISE EXCEPTION 'database overloaded' USING ERRCODE = '53000'; END $$;
CREATE TRIGGER fail_video_insert BEFORE INSERT ON videos
    FOR EACH ROW EXECUTE FUNCTION pg_temp_fail();
"""
HEAL_VIDEO_INSERT = "DROP TRIGGER fail_video_insert ON videos; DROP FUNCTION pg_temp_fail();"


async def test_a_last_request_that_fails_late_is_not_complete_and_is_sent_again(
    svc, clips, tools, s3
) -> None:
    """The last request assembles the file in S3, then the database refuses the video: the
    upload must not look complete (no Video-Id to give), and the same request again finishes."""
    data = clips["big"].read_bytes()
    bucket = svc.settings.s3_bucket
    location = await create(svc, len(data))
    half = len(data) // 2
    assert (await patch(svc, location, 0, data[:half])).status_code == 204
    await svc.runtime.pool.execute(FAIL_VIDEO_INSERT)
    try:
        failed = await patch(svc, location, half, data[half:])
        assert failed.status_code == 503, failed.text
        assert failed.headers["Retry-After"]
        after = await svc.client.head(location, headers={**svc.headers(), **TUS})
        assert int(after.headers["Upload-Offset"]) == half and "Video-Id" not in after.headers
    finally:
        await svc.runtime.pool.execute(HEAL_VIDEO_INSERT)
    again = await patch(svc, location, half, data[half:])
    assert again.status_code == 204, again.text
    key = f"originals/{again.headers['Video-Id']}.mp4"
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == data
    assert tails(tools, s3, svc, location) == []
    assert (
        await svc.sql("SELECT count(*) FROM videos WHERE id = $1::uuid", again.headers["Video-Id"])
        == 1
    )


async def test_expiry_removes_every_object_an_upload_made(svc, clips, tools, s3) -> None:
    """An unfinished upload's original assembled by a failed completion, and a tail a stale
    request left after completion, both go when the upload expires."""
    data = clips["big"].read_bytes()
    bucket = svc.settings.s3_bucket
    finished = await create(svc, len(data))
    done = await patch(svc, finished, 0, data)
    assert done.status_code == 204, done.text
    stray = f"tus/{_id(finished)}/stale.tail"
    s3.put_object(Bucket=bucket, Key=stray, Body=b"late bytes")
    unfinished = await create(svc, len(data))
    assert (await patch(svc, unfinished, 0, data[:MiB])).status_code == 204
    assembled = f"originals/{(await svc.runtime.tus.get(_id(unfinished), svc.user)).video_id}.mp4"
    s3.put_object(Bucket=bucket, Key=assembled, Body=data)
    await svc.runtime.pool.execute(
        "UPDATE tus_uploads SET expires_at = now() - interval '1 second' WHERE id = ANY($1)",
        [_id(finished), _id(unfinished)],
    )
    assert await svc.runtime.tus.expire() >= 2
    keys = tools.keys(s3, bucket)
    assert stray not in keys and assembled not in keys and not tails(tools, s3, svc, unfinished)
    assert f"originals/{done.headers['Video-Id']}.mp4" in keys  # the video's own file stays
