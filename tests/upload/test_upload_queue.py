"""A waiting video's place in the processing queue and its ETA (queue_positions.py), through the
API, with the processor's events fed into the real events queue and the real jobs queue in SQS: the
position counts down as the jobs ahead finish, the ETA follows the measured service time and the
jobs in flight, and a poll reads the replica's snapshot, never the database's queue."""

from __future__ import annotations

from typing import Any

from risingstars.upload import queries


async def _finish(svc, sqs, tools, video_id: str, service_seconds: float | None) -> None:
    """The processor's `processed` event for a video (an older processor's, without the service
    time, when `service_seconds` is None), applied by the worker."""
    event = tools.processed_event(video_id)
    if service_seconds is not None:
        event |= {"service_seconds": service_seconds, "version": 1}
    await tools.send_events(svc, sqs, event)


async def _queues(svc, video_ids: list[str], headers: dict | None = None) -> list[Any]:
    """Each video's `queue` field, as its detail answers it."""
    places = []
    for video_id in video_ids:
        response = await svc.client.get(f"/api/videos/{video_id}", headers=headers or svc.headers())
        assert response.status_code == 200
        places.append(response.json()["queue"])
    return places


async def _until(svc, tools, video_ids: list[str], expected: list[Any], headers=None) -> None:
    async def reached() -> bool:
        return await _queues(svc, video_ids, headers) == expected

    await tools.eventually(reached, what=f"queue places {expected}")


def place(position: int, eta: int | None) -> dict[str, int | None]:
    return {"position": position, "eta_seconds": eta}


async def test_the_position_counts_down_as_the_jobs_ahead_finish(service, clips, sqs, tools):
    async with service(queue_refresh_seconds=0.1) as svc:
        # Another player's video was queued first: it is ahead of all of ours.
        other = svc.headers("another-player")
        first_in_line = (await svc.upload(clips["ok"], headers=other)).json()["video_id"]
        mine = [(await svc.upload(clips["ok"])).json()["video_id"] for _ in range(3)]
        headers = svc.headers()
        # No processed video has reported a service time yet: no ETA.
        await _until(svc, tools, mine, [place(1, None), place(2, None), place(3, None)], headers)

        # Nothing is in flight (no processor took a job): one job at a time, 40 s each.
        await _finish(svc, sqs, tools, first_in_line, 40)
        await _until(svc, tools, mine, [place(0, 40), place(1, 80), place(2, 120)], headers)
        assert await _queues(svc, [first_in_line], other) == [None]

        # The mean of the measured jobs: (40 + 20) / 2.
        await _finish(svc, sqs, tools, mine[0], 20)
        await _until(svc, tools, mine, [None, place(0, 30), place(1, 60)], headers)
        listed = (await svc.client.get("/api/videos", headers=headers)).json()
        assert {v["video_id"]: v["queue"] for v in listed} == {
            mine[0]: None,
            mine[1]: place(0, 30),
            mine[2]: place(1, 60),
        }

        # An older processor's event, without a service time, leaves the mean alone.
        await _finish(svc, sqs, tools, mine[1], None)
        await _until(svc, tools, mine, [None, None, place(0, 30)], headers)
        unmeasured = "SELECT service_seconds FROM videos WHERE id = $1::uuid"
        assert await svc.sql(unmeasured, mine[1]) is None

        await _finish(svc, sqs, tools, mine[2], 30)
        await _until(svc, tools, mine, [None, None, None], headers)
        listed = (await svc.client.get("/api/videos", headers=headers)).json()
        assert [v["queue"] for v in listed] == [None, None, None]


async def test_the_eta_counts_the_time_failed_jobs_took_too(service, clips, sqs, tools):
    async with service(queue_refresh_seconds=0.1) as svc:
        ids = [(await svc.upload(clips["ok"])).json()["video_id"] for _ in range(4)]
        await _finish(svc, sqs, tools, ids[0], 40)
        await _until(svc, tools, ids[1:], [place(0, 40), place(1, 80), place(2, 120)])
        # A job that failed after 20 s of work kept a processor busy as long: (40 + 20) / 2.
        failed = {"type": "failed", "video_id": ids[1], "reason": "processing_failed",
                  "service_seconds": 20, "version": 1}  # fmt: skip
        await tools.send_events(svc, sqs, failed)
        await _until(svc, tools, ids[2:], [place(0, 30), place(1, 60)])
        # A rejection from an older processor (no time) leaves the mean alone.
        await tools.send_events(
            svc, sqs, {"type": "rejected", "video_id": ids[2], "reason": "not_a_video"}
        )
        await _until(svc, tools, ids[3:], [place(0, 30)])


async def test_the_eta_shares_the_queue_among_the_jobs_in_flight(service, clips, sqs, tools):
    async with service(queue_refresh_seconds=0.1) as svc:
        ids = [(await svc.upload(clips["ok"])).json()["video_id"] for _ in range(4)]
        await _finish(svc, sqs, tools, ids[0], 60)
        waiting = ids[1:]
        await _until(svc, tools, waiting, [place(0, 60), place(1, 120), place(2, 180)])

        # Two processors take a job each (the messages stay in flight, invisible).
        url = svc.settings.jobs_queue_url
        taken: list[dict] = []

        def take() -> bool:
            response = sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=2 - len(taken), VisibilityTimeout=600
            )
            taken.extend(response.get("Messages", []))
            return len(taken) == 2

        await tools.eventually(take, what="two jobs taken")
        # (position + 1) × 60 s ÷ 2 jobs at a time.
        await _until(svc, tools, waiting, [place(0, 30), place(1, 60), place(2, 90)])


async def test_a_poll_reads_the_snapshot_and_never_the_queue_from_the_database(
    service, clips, tools
):
    """Clients poll every few seconds: a detail or list request makes its one read of the
    video rows and nothing else; the queue is the snapshot the background task refreshed."""
    async with service(queue_refresh_seconds=3600) as svc:
        queue = svc.runtime.queue
        # The start-up refresh is done; the next one is an hour away.
        await tools.eventually(lambda: queue.refreshes == 1, what="the first refresh")
        ids = [(await svc.upload(clips["ok"])).json()["video_id"] for _ in range(2)]
        await queue.refresh()

        recorder = _QueryRecorder(svc.runtime.pool)
        svc.runtime.pool = recorder
        assert await _queues(svc, ids * 5) == [place(0, None), place(1, None)] * 5
        for _ in range(3):
            listed = (await svc.client.get("/api/videos", headers=svc.headers())).json()
            assert [v["queue"] for v in listed] == [place(1, None), place(0, None)]
        assert recorder.queries == [queries.GET_VIDEO] * 10 + [queries.LIST_OWN] * 3
        assert queue.refreshes == 2

        # A video uploaded since the snapshot is behind everything in it.
        svc.runtime.pool = recorder.pool
        newest = (await svc.upload(clips["ok"])).json()["video_id"]
        assert await _queues(svc, [newest]) == [place(2, None)]


class _QueryRecorder:
    """The service's pool, noting every query made through it (and every connection taken)."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.queries: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.pool, name)
        if name not in {"fetch", "fetchrow", "fetchval", "execute", "executemany", "acquire"}:
            return attribute

        def recorded(*args: Any, **kwargs: Any) -> Any:
            self.queries.append(args[0] if args and isinstance(args[0], str) else name)
            return attribute(*args, **kwargs)

        return recorded
