"""Stopping a worker never loses a job: killed mid-job, the job comes back and another worker
completes it once; on SIGTERM running jobs finish within the grace period, else go back to the
queue at once with ffmpeg stopped and the scratch removed."""

from __future__ import annotations

import signal

import httpx


async def _in_flight(port: str) -> float | None:
    async with httpx.AsyncClient(timeout=2) as client:
        try:
            text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
        except httpx.HTTPError:
            return None
    for line in text.splitlines():
        if line.startswith("processor_jobs_in_flight "):
            return float(line.split()[1])
    return None


async def test_a_worker_killed_mid_job_leaves_the_job_to_another(
    rig_factory, tools, tmp_path
) -> None:
    async with rig_factory() as rig:
        video_id = await rig.submit("medium_20s")
        # A short lease, so the killed worker's job comes back soon.
        env = rig.env(VISIBILITY_TIMEOUT_SECONDS="3")
        first = tools.start_processor(env, tmp_path / "first.log")
        second = None
        try:
            encoder = await tools.eventually(
                lambda: tools.encoder_of(first.pid), timeout=60, what="the first worker's ffmpeg"
            )
            assert await _in_flight(env["PORT"]) == 1.0
            first.kill()
            first.wait()
            await tools.eventually(
                lambda: tools.process_gone(encoder), timeout=10, what="its ffmpeg to die with it"
            )
            assert any(name.startswith("rsproc-") for name in rig.scratch())

            second = tools.start_processor(rig.env(), tmp_path / "second.log")
            (event,) = await rig.events(1, timeout=120)
            assert event["type"] == "processed" and event["video_id"] == video_id
            assert await rig.keys("processed/") == [
                f"processed/{video_id}.jpg",
                f"processed/{video_id}.mp4",
            ]
            assert await rig.no_more_events(2) == []
            assert await rig.queue_counts() == (0, 0)
            # The second worker swept what the killed one left.
            assert rig.scratch() == []
        finally:
            for proc in (first, second):
                if proc is not None and proc.poll() is None:
                    proc.kill()
                    proc.wait()


async def test_sigterm_hands_a_job_back_when_the_grace_period_runs_out(
    rig_factory, tools, tmp_path
) -> None:
    async with rig_factory() as rig:
        video_id = await rig.submit("medium_20s")
        env = rig.env(
            SHUTDOWN_TIMEOUT_SECONDS="1", DRAIN_SECONDS="1", VISIBILITY_TIMEOUT_SECONDS="60"
        )
        proc = tools.start_processor(env, tmp_path / "worker.log")
        try:
            encoder = await tools.eventually(
                lambda: tools.encoder_of(proc.pid), timeout=60, what="the worker's ffmpeg"
            )
            proc.send_signal(signal.SIGTERM)
            await tools.eventually(
                lambda: proc.poll() is not None, timeout=30, what="the worker to exit"
            )
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert tools.process_gone(encoder)
        assert rig.scratch() == []

        # Back in the queue at once, not after its 60 s lease.
        async def receive():
            response = await rig.sqs.receive_message(
                QueueUrl=rig.resources.jobs_queue_url,
                WaitTimeSeconds=1,
                MessageSystemAttributeNames=["ApproximateReceiveCount"],
            )
            return response.get("Messages")

        (message,) = await tools.eventually(receive, timeout=10, what="the job handed back")
        assert video_id in message["Body"]
        assert message["Attributes"]["ApproximateReceiveCount"] == "2"
        assert await rig.keys("processed/") == []
        assert await rig.no_more_events(1) == []


async def test_draining_stops_receiving_and_lets_the_running_job_finish(rig, tools) -> None:
    async with rig.running(rig.settings(shutdown_timeout_seconds=120)) as app:
        first = await rig.submit("short_12s")
        await tools.eventually(
            lambda: app.state.worker.running == 1, timeout=30, what="the job to start"
        )
        app.state.lifecycle.draining = True  # what kit.serve does on SIGTERM
        await tools.eventually(
            lambda: app.state.worker.stopping, timeout=5, what="the worker to stop receiving"
        )
        second = await rig.submit("tiny")
    # The lifespan ended only once the running job had finished.
    (event,) = await rig.events(1, timeout=5)
    assert event["type"] == "processed" and event["video_id"] == first
    assert await rig.queue_counts() == (1, 0)
    assert second not in str(await rig.keys("processed/"))
    assert rig.scratch() == []
