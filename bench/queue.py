"""Queue position and ETA: what polling a waiting video costs, and what keeping it cheap costs.

- `queue.poll_backlog_ratio`: GET /api/videos/{id} (with its `queue` field) per second with
  50,000 videos waiting ÷ the same with 20 waiting, one upload process, the same run: a poll
  only looks the video up in the replica's snapshot, so the backlog should not slow it (target
  >= 0.9; what it does cost is the refresh every QUEUE_REFRESH_SECONDS, the default 5 s, in the
  same process). `queue.poll_rps_small` / `queue.poll_rps_backlog` are the raw figures.
- `queue.refresh_query_ms`: the snapshot's one query at 50,000 waiting (what each replica pays
  every QUEUE_REFRESH_SECONDS), beside `queue.count_ahead_ms`, the per-request count a
  snapshot-less design would run on every poll, and `queue.refresh_per_count_ratio` (how many
  polls' worth of counting one refresh costs).
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid

import asyncpg
import httpx

from bench import printer
from bench.upload import Service, servers
from risingstars.upload import queries
from risingstars.upload.jobqueue import MAX_TRACKED

SMALL, BACKLOG = 20, 50_000
POLL_SECONDS = 5.0
CONNECTIONS = 8
QUERY_ROUNDS = 20
ROUNDS = 3

COUNT_AHEAD = """
SELECT count(*) FROM videos
WHERE status IN ('uploaded', 'processing') AND (uploaded_at, id) < ($1, $2)
"""


bench = printer("queue")


async def seed(conn: asyncpg.Connection, first: int, count: int, user: str) -> list[uuid.UUID]:
    """`count` waiting videos, the newest last; every tenth one `user`'s."""
    rows = await conn.fetch(
        """
        INSERT INTO videos (id, user_id, username, city, city_key, title, status, original_key,
                            size_bytes, uploaded_at)
        SELECT md5('waiting' || i)::uuid, CASE WHEN i % 10 = 0 THEN $3 ELSE 'other' || i END,
               'player', 'Bogotá', 'bogota', 'video ' || i, 'uploaded', 'originals/' || i, 1000,
               now() - interval '1 day' + i * interval '1 millisecond'
        FROM generate_series($1::int, $1 + $2 - 1) AS i
        RETURNING id, user_id
        """,
        first, count, user,
    )  # fmt: skip
    await conn.execute("ANALYZE videos")
    return [r["id"] for r in rows if r["user_id"] == user]


async def backlog_waiting(conn: asyncpg.Connection, waiting: bool, kept: list) -> None:
    """The backlog (every video but `kept`) waiting for processing, or out of the queue."""
    status = "uploaded" if waiting else "processed"
    await conn.execute("UPDATE videos SET status = $1 WHERE id <> ALL($2)", status, kept)
    await conn.execute("VACUUM ANALYZE videos")


async def polls(port: int, token: str, video_ids: list[uuid.UUID]) -> float:
    """Detail requests per second over keep-alive connections cycling through `video_ids`."""
    done = 0
    deadline = time.monotonic() + POLL_SECONDS
    headers = {"Authorization": f"Bearer {token}"}

    async def worker(client: httpx.AsyncClient, offset: int) -> None:
        nonlocal done
        i = offset
        while time.monotonic() < deadline:
            response = await client.get(f"/api/videos/{video_ids[i % len(video_ids)]}")
            if response.status_code != 200 or response.json()["queue"] is None:
                raise RuntimeError(f"poll answered {response.status_code}: {response.text}")
            done += 1
            i += 1

    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base, headers=headers) as client:
        start = time.monotonic()
        await asyncio.gather(*(worker(client, i) for i in range(CONNECTIONS)))
        return done / (time.monotonic() - start)


async def place(port: int, token: str, video_id: uuid.UUID) -> int:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        response = await client.get(
            f"/api/videos/{video_id}", headers={"Authorization": f"Bearer {token}"}
        )
        return response.json()["queue"]["position"]


async def query_ms(conn: asyncpg.Connection, query: str, *args: object) -> float:
    await conn.fetch(query, *args)  # warm
    times = []
    for _ in range(QUERY_ROUNDS):
        start = time.perf_counter()
        await conn.fetch(query, *args)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


async def main() -> None:
    with servers("queue") as up:  # the default refresh: 5 s
        tmp, keys, dsn, env = up.tmp, up.keys, up.dsn, up.env
        user = str(uuid.uuid4())
        token = keys.token(user, username="bench", ttl=7200)
        conn = await asyncpg.connect(dsn)
        try:
            small_ids = await seed(conn, 0, SMALL, user)
            # The newest video, mine: 20 ahead with the small queue, 49,990 with the backlog.
            marker = (await seed(conn, SMALL, BACKLOG - SMALL, user))[-1]
            polled = [*small_ids, marker]
            first = "SELECT id FROM videos ORDER BY uploaded_at LIMIT $1"
            kept = [*(r["id"] for r in await conn.fetch(first, SMALL)), marker]
            runs: dict[bool, list[float]] = {False: [], True: []}
            with Service(env, tmp / "upload.log") as service:
                # Alternated rounds, the best of each: the backlog waits, or is gone.
                for backlog in (True, False) * ROUNDS:
                    await backlog_waiting(conn, backlog, kept)
                    ahead = BACKLOG - 10 if backlog else SMALL
                    deadline = time.monotonic() + 60
                    # The refresh that sees it (polled, not slept on).
                    while await place(service.port, token, marker) != ahead:
                        if time.monotonic() > deadline:
                            raise RuntimeError("the snapshot never saw the change")
                        await asyncio.sleep(0.2)
                    runs[backlog].append(await polls(service.port, token, polled))
            small, backlog = max(runs[False]), max(runs[True])
            bench("poll_rps_small", small, "req/s")
            bench("poll_rps_backlog", backlog, "req/s")
            bench("poll_backlog_ratio", backlog / small)

            await backlog_waiting(conn, True, kept)
            last = await conn.fetchrow(
                "SELECT uploaded_at, id FROM videos ORDER BY uploaded_at DESC, id DESC LIMIT 1"
            )
            refresh = await query_ms(conn, queries.QUEUE_STATE, MAX_TRACKED, 20)
            count = await query_ms(conn, COUNT_AHEAD, last["uploaded_at"], last["id"])
            bench("refresh_query_ms", refresh, "ms")
            bench("count_ahead_ms", count, "ms")
            bench("refresh_per_count_ratio", refresh / count)
        finally:
            await conn.close()


def run() -> None:
    asyncio.run(main())
