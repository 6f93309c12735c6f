"""The processor as a service: probes and metrics, its configuration, where ffmpeg comes from,
how many messages it holds, and the small rules it runs on."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest

from risingstars.kit.settings import SettingsError
from risingstars.kit.settings import load as load_settings
from risingstars.processor import media
from risingstars.processor.settings import Settings
from risingstars.processor.worker import backoff_seconds


async def test_probes_and_metrics_are_served_while_jobs_run(rig, tools) -> None:
    before = {
        "jobs": tools.metric("processor_job_duration_seconds_count", outcome="processed"),
        "wait": tools.metric("processor_queue_wait_seconds_count"),
        "rtf": tools.metric("processor_realtime_factor_count"),
    }
    async with rig.running() as app:
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://processor") as client:
            assert (await client.get("/healthz")).status_code == 200
            ready = await client.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.json()["checks"] == {"worker": "ok"}

            await rig.submit("tiny")
            (event,) = await rig.events(1)
            assert event["type"] == "processed"
            await tools.eventually(
                lambda: app.state.worker.running == 0, timeout=10, what="the job settled"
            )
            text = (await client.get("/metrics")).text
    for name in (
        "processor_jobs_in_flight 0.0",
        'processor_jobs_total{outcome="processed"}',
        "processor_job_duration_seconds_bucket",
        "processor_ffmpeg_duration_seconds_bucket",
        "processor_realtime_factor_bucket",
        "processor_queue_wait_seconds_bucket",
    ):
        assert name in text
    assert tools.metric("processor_job_duration_seconds_count", outcome="processed") == (
        before["jobs"] + 1
    )
    assert tools.metric("processor_queue_wait_seconds_count") == before["wait"] + 1
    assert tools.metric("processor_realtime_factor_count") == before["rtf"] + 1


@pytest.mark.parametrize("concurrency", [1, 2])
async def test_it_never_holds_more_messages_than_it_can_run(rig, tools, concurrency) -> None:
    for _ in range(concurrency + 2):
        await rig.submit("tiny")
    held: list[tuple[int, int]] = []
    async with rig.running(rig.settings(concurrency=concurrency)) as app:

        async def all_done() -> bool:
            visible, in_flight = await rig.queue_counts()
            held.append((in_flight, app.state.worker.running))
            return visible == 0 and in_flight == 0

        await tools.eventually(all_done, timeout=120, what="every job done", interval=0.05)
    assert max(in_flight for in_flight, _ in held) == concurrency
    assert all(in_flight <= concurrency and running <= concurrency for in_flight, running in held)
    assert len(await rig.events(concurrency + 2)) == concurrency + 2


async def test_a_job_longer_than_its_lease_keeps_it_through_heartbeats(rig, tools) -> None:
    # A 2 s lease, a job of several seconds and a free slot that would take the message again
    # if its visibility lapsed.
    encodes = tools.metric("processor_ffmpeg_duration_seconds_count")
    settings = rig.settings(concurrency=2, visibility_timeout_seconds=2, heartbeat_seconds=0.5)
    async with rig.running(settings):
        video_id = await rig.submit("medium_20s")
        (event,) = await rig.events(1)
        assert event["video_id"] == video_id
        assert await rig.no_more_events(2) == []
    assert tools.metric("processor_ffmpeg_duration_seconds_count") == encodes + 1
    assert await rig.queue_counts() == (0, 0)


def test_settings_name_every_missing_variable() -> None:
    with pytest.raises(SettingsError) as error:
        load_settings(Settings, {"CONCURRENCY": "0"})
    text = str(error.value)
    for name in ("S3_BUCKET", "JOBS_QUEUE_URL", "EVENTS_QUEUE_URL"):
        assert name in text


def test_settings_are_validated(tmp_path) -> None:
    base = {
        "S3_BUCKET": "b",
        "JOBS_QUEUE_URL": "http://q/jobs",
        "EVENTS_QUEUE_URL": "http://q/events",
        "WORK_DIR": str(tmp_path),
    }
    settings = load_settings(Settings, base)
    assert (settings.concurrency, settings.max_attempts, settings.work_dir) == (1, 5, str(tmp_path))
    for bad in (
        {"CONCURRENCY": "0"},
        {"HEARTBEAT_SECONDS": "120", "VISIBILITY_TIMEOUT_SECONDS": "60"},
        {"RETRY_BASE_SECONDS": "100", "RETRY_MAX_SECONDS": "10"},
        {"RECEIVE_WAIT_SECONDS": "21"},
        {"LOGO_CARD_PATH": str(tmp_path / "missing.png")},
        {"WORK_DIR": str(tmp_path / "missing")},
    ):
        with pytest.raises(SettingsError) as error:
            load_settings(Settings, {**base, **bad})
        assert next(iter(bad)) in str(error.value)


def test_without_configuration_the_command_exits_naming_what_is_missing() -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"S3_BUCKET", "JOBS_QUEUE_URL"}}
    result = subprocess.run(
        [sys.executable, "-m", "risingstars.processor"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "S3_BUCKET" in result.stderr


def test_ffmpeg_comes_from_ffmpeg_path_then_path_then_the_wheel(tmp_path, monkeypatch) -> None:
    import imageio_ffmpeg

    wheel = imageio_ffmpeg.get_ffmpeg_exe()
    assert media.locate_ffmpeg(wheel) == wheel
    with pytest.raises(RuntimeError, match="FFMPEG_PATH"):
        media.locate_ffmpeg(str(tmp_path / "nothing"))

    on_path = tmp_path / "bin" / "ffmpeg"
    on_path.parent.mkdir()
    on_path.symlink_to(wheel)
    monkeypatch.setenv("PATH", str(on_path.parent))
    assert media.locate_ffmpeg(None) == str(on_path)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert media.locate_ffmpeg(None) == wheel


def test_backoff_grows_exponentially_up_to_the_cap_with_jitter() -> None:
    low = [backoff_seconds(n, 30, 900, rand=lambda: 0.0) for n in range(1, 8)]
    high = [backoff_seconds(n, 30, 900, rand=lambda: 1.0) for n in range(1, 8)]
    assert high == [30, 60, 120, 240, 480, 900, 900]
    assert low == [15, 30, 60, 120, 240, 450, 450]
    assert backoff_seconds(10_000, 30, 900) <= 900


def test_the_command_line_has_the_shared_shape(monkeypatch, capsys) -> None:
    from risingstars.processor.__main__ import main

    for name in ("S3_BUCKET", "JOBS_QUEUE_URL", "EVENTS_QUEUE_URL"):
        monkeypatch.delenv(name, raising=False)
    assert main(["serve"]) == 2
    assert "S3_BUCKET" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["migrate"])  # the processor has no database
    assert exit_.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
