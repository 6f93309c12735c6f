"""Public videos, votes and rankings."""

from __future__ import annotations

import asyncio
import base64
import uuid

import pytest
from prometheus_client import REGISTRY

from risingstars import jobs
from risingstars.upload.text import city_key

PUBLIC_FIELDS = {"video_id", "title", "username", "city", "processed_url", "thumbnail_url", "votes"}


async def _seed(svc, user_id: str, username: str, city: str, votes: int = 0, *,
                status: str = "processed", title: str = "jugada") -> str:  # fmt: skip
    """A video row as the upload and the processor would have left it."""
    video_id = uuid.uuid4()
    await svc.runtime.pool.execute(
        """INSERT INTO videos (id, user_id, username, city, city_key, title, status,
                               original_key, processed_key, size_bytes, votes, processed_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1000, $10,
                   CASE WHEN $7 = 'processed' THEN clock_timestamp() END)""",
        video_id, user_id, username, city, city_key(city), title, status,
        f"originals/{video_id}.mp4", f"processed/{video_id}.mp4", votes,
    )  # fmt: skip
    return str(video_id)


async def _uploaded_and_processed(svc, sqs, tools, path, headers) -> str:
    video_id = (await svc.upload(path, headers=headers)).json()["video_id"]
    event = jobs.Processed(video_id, f"processed/{video_id}.mp4", f"processed/{video_id}.jpg",
                           duration_seconds=25.0, size_bytes=1000)  # fmt: skip
    sqs.send_message(QueueUrl=svc.settings.events_queue_url, MessageBody=jobs.encode(event))

    async def processed() -> bool:
        status = await svc.sql("SELECT status FROM videos WHERE id = $1::uuid", video_id)
        return status == "processed"

    await tools.eventually(processed, what="video processed")
    return video_id


async def test_public_videos_lists_processed_videos_only(svc, clips, sqs, tools) -> None:
    uploader = svc.headers(tools.new_id(), username="camilo", city="Bogotá")
    public_id = await _uploaded_and_processed(svc, sqs, tools, clips["ok"], uploader)
    await svc.upload(clips["ok"], headers=uploader)  # still uploaded: not public

    response = await svc.client.get("/api/public/videos")
    assert response.status_code == 200
    (video,) = response.json()
    assert set(video) == PUBLIC_FIELDS
    assert (video["video_id"], video["username"], video["city"], video["votes"]) == (
        public_id,
        "camilo",
        "Bogotá",
        0,
    )
    assert video["processed_url"].startswith(svc.settings.aws_endpoint_url)
    assert f"processed/{public_id}.mp4" in video["processed_url"]


async def test_public_videos_pages_and_filters_by_city_ignoring_case_and_accents(svc) -> None:
    ids = [await _seed(svc, f"u{i}", f"p{i}", "Bogotá" if i % 2 else "Medellín") for i in range(7)]
    newest_first = ids[::-1]
    everything = (await svc.client.get("/api/public/videos")).json()
    assert [v["video_id"] for v in everything] == newest_first
    page = (await svc.client.get("/api/public/videos?limit=2&offset=1")).json()
    assert [v["video_id"] for v in page] == newest_first[1:3]
    for spelling in ("bogota", "BOGOTÁ", "  Bogota  "):
        found = (await svc.client.get("/api/public/videos", params={"city": spelling})).json()
        assert [v["video_id"] for v in found] == [i for i in newest_first if ids.index(i) % 2]
    assert (await svc.client.get("/api/public/videos?city=Cali")).json() == []


async def test_public_videos_follow_the_next_link_to_any_depth(svc) -> None:
    ids = [await _seed(svc, f"u{i}", f"p{i}", "Bogotá" if i % 2 else "Cali") for i in range(7)]
    for query, expected in (
        ({"limit": 2}, ids[::-1]),
        ({"limit": 3, "city": "BOGOTA"}, [i for i in ids[::-1] if ids.index(i) % 2]),
    ):
        seen, pages, response = [], 0, await svc.client.get("/api/public/videos", params=query)
        while True:
            assert response.status_code == 200
            seen += [v["video_id"] for v in response.json()]
            pages += 1
            if "next" not in response.links:
                break
            assert pages <= len(ids), "the pages never end"
            response = await svc.client.get(response.links["next"]["url"])
        assert seen == expected
        assert pages == -(-len(expected) // query["limit"]) + (len(expected) % query["limit"] == 0)


def _crafted(moment: str) -> str:
    raw = f"{moment}|00000000-0000-4000-8000-000000000000".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "after",
    [
        "x",
        "bm90IGEgY3Vyc29y",
        "MjAyNi0xMS0zMHxub3QtYS11dWlk",
        # Well-formed, but a moment outside what PostgreSQL (or Python, in UTC) can hold.
        _crafted("0001-01-01T00:00:00+14:00"),
        _crafted("9999-12-31T23:59:59-14:00"),
    ],
)
async def test_public_videos_refuse_a_bad_cursor(svc, after: str) -> None:
    response = await svc.client.get("/api/public/videos", params={"after": after})
    assert response.status_code == 400
    assert response.json()["detail"] == "Parámetro inválido: after"


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=101", "limit=abc", "offset=-1", "offset=x", "city=", "city=%20%20",
     "city=" + "a" * 101],
)  # fmt: skip
@pytest.mark.parametrize("path", ["/api/public/videos", "/api/public/rankings"])
async def test_invalid_parameters_are_400(svc, path: str, query: str) -> None:
    response = await svc.client.get(f"{path}?{query}")
    assert response.status_code == 400
    assert response.json()["detail"]


async def test_a_vote_counts_once(svc) -> None:
    video_id = await _seed(svc, "owner", "owner", "Cali")
    voter = svc.headers(str(uuid.uuid4()))
    first = await svc.client.post(f"/api/public/videos/{video_id}/vote", headers=voter)
    assert first.status_code == 200
    assert first.json() == {"message": "Voto registrado exitosamente."}
    again = await svc.client.post(f"/api/public/videos/{video_id}/vote", headers=voter)
    assert again.status_code == 400
    assert again.json()["detail"] == "Ya has votado por este video"
    other = await svc.client.post(f"/api/public/videos/{video_id}/vote", headers=svc.headers())
    assert other.status_code == 200
    (listed,) = (await svc.client.get("/api/public/videos")).json()
    assert listed["votes"] == 2


async def test_voting_needs_a_token_and_a_public_video(svc) -> None:
    hidden = await _seed(svc, "owner", "owner", "Cali", status="uploaded")
    public = await _seed(svc, "owner", "owner", "Cali")
    assert (await svc.client.post(f"/api/public/videos/{public}/vote")).status_code == 401
    for video_id in (hidden, str(uuid.uuid4()), "99999", "not-an-id"):
        response = await svc.client.post(
            f"/api/public/videos/{video_id}/vote", headers=svc.headers()
        )
        assert response.status_code == 404, video_id
        assert response.json()["detail"]
    assert await svc.sql("SELECT count(*) FROM votes") == 0


def _votes(result: str) -> float:
    return REGISTRY.get_sample_value("upload_votes_total", {"result": result}) or 0.0


async def test_fifty_concurrent_votes_by_one_user_count_once(svc) -> None:
    video_id = await _seed(svc, "owner", "owner", "Cali")
    voter = svc.headers(str(uuid.uuid4()))
    before = {result: _votes(result) for result in ("counted", "duplicate")}
    responses = await asyncio.gather(
        *(svc.client.post(f"/api/public/videos/{video_id}/vote", headers=voter) for _ in range(50))
    )
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] + [400] * 49
    assert await svc.sql("SELECT votes FROM videos") == 1
    assert await svc.sql("SELECT count(*) FROM votes") == 1
    metrics = (await svc.client.get("/metrics")).text
    assert 'upload_votes_total{result="duplicate"}' in metrics
    after = {result: _votes(result) for result in ("counted", "duplicate")}
    assert {r: after[r] - before[r] for r in after} == {"counted": 1, "duplicate": 49}


async def test_rankings_rank_players_by_their_processed_videos_votes(svc) -> None:
    await _seed(svc, "ana", "ana", "Bogotá", 5)
    await _seed(svc, "ana", "ana", "Bogotá", 4)
    await _seed(svc, "ana", "ana", "Bogotá", 100, status="uploaded")  # not public: not counted
    await _seed(svc, "beto", "beto", "Medellín", 9)  # ties with ana: name decides
    await _seed(svc, "caro", "caro", "bogota", 12)
    await _seed(svc, "dani", "dani", "Cali", 0)

    response = await svc.client.get("/api/public/rankings")
    assert response.status_code == 200
    assert response.json() == [
        {"position": 1, "username": "caro", "city": "bogota", "votes": 12},
        {"position": 2, "username": "ana", "city": "Bogotá", "votes": 9},
        {"position": 3, "username": "beto", "city": "Medellín", "votes": 9},
        {"position": 4, "username": "dani", "city": "Cali", "votes": 0},
    ]
    page = (await svc.client.get("/api/public/rankings?limit=2&offset=1")).json()
    assert [(r["position"], r["username"]) for r in page] == [(2, "ana"), (3, "beto")]
    for spelling in ("bogota", "BOGOTÁ", "Bogotá"):
        city = (await svc.client.get("/api/public/rankings", params={"city": spelling})).json()
        assert [(r["position"], r["username"]) for r in city] == [(1, "caro"), (2, "ana")]
    assert (await svc.client.get("/api/public/rankings?city=Lima")).json() == []


async def test_rankings_default_to_ten_and_follow_votes(svc) -> None:
    for i in range(12):
        await _seed(svc, f"u{i:02}", f"player{i:02}", "Cali", i)
    top = (await svc.client.get("/api/public/rankings")).json()
    assert [r["username"] for r in top] == [f"player{i:02}" for i in range(11, 1, -1)]
    video_id = await svc.sql("SELECT id::text FROM videos WHERE username = 'player00'")
    for _ in range(20):
        voter = svc.headers(str(uuid.uuid4()))
        await svc.client.post(f"/api/public/videos/{video_id}/vote", headers=voter)
    top = (await svc.client.get("/api/public/rankings?limit=1")).json()
    assert top == [{"position": 1, "username": "player00", "city": "Cali", "votes": 20}]


async def test_rankings_are_served_from_the_cache_until_it_expires(service) -> None:
    async with service(rankings_cache_seconds=3600) as svc:
        await _seed(svc, "ana", "ana", "Cali", 3)
        before = (await svc.client.get("/api/public/rankings")).json()
        await _seed(svc, "beto", "beto", "Cali", 7)
        assert (await svc.client.get("/api/public/rankings")).json() == before
        svc.runtime.rankings.ttl = 0  # as if the hour had passed
        after = (await svc.client.get("/api/public/rankings")).json()
        assert [r["username"] for r in after] == ["beto", "ana"]
