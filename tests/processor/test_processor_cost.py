"""What one upload may cost the processor (finding 10.6): picture size and frame rate are
checked before encoding, ffmpeg's threads and output are bounded, a job that times out again is
rejected as too slow, and outputs go to S3 without being held in memory."""

from __future__ import annotations

import tracemalloc

import pytest

from risingstars.dev import clips
from risingstars.jobs import Reason
from risingstars.processor import media
from risingstars.processor.failures import Rejected
from risingstars.processor.pipeline import Pipeline


async def _rejected_alone(rig, tools, settings, clip: str) -> dict:
    encodes = tools.metric("processor_ffmpeg_duration_seconds_count")
    video_id = await rig.submit(clip)
    async with rig.running(settings):
        (event,) = await rig.events(1, timeout=120)
        await tools.eventually(
            lambda: _empty(rig), timeout=10, what="the job's message to be deleted"
        )
    assert event["type"] == "rejected" and event["video_id"] == video_id, event
    assert tools.metric("processor_ffmpeg_duration_seconds_count") == encodes
    assert await rig.keys("processed/") == []
    return event


async def _empty(rig) -> bool:
    return await rig.queue_counts() == (0, 0)


@pytest.mark.parametrize(
    ("limits", "reason"),
    [
        ({"max_picture_pixels": 320 * 240 - 1}, "picture_too_large"),
        ({"max_frame_rate": 25.0}, "frame_rate_too_high"),
    ],
    ids=["picture", "frame_rate"],
)
async def test_a_picture_too_large_or_too_fast_is_rejected_before_encoding(
    rig, tools, limits, reason
) -> None:
    # "tiny" is 320x240 at 30 frames/s: just past each limit.
    event = await _rejected_alone(rig, tools, rig.settings(**limits), "tiny")
    assert event["reason"] == reason


async def test_an_output_past_its_size_limit_is_rejected(rig, tools) -> None:
    settings = rig.settings(max_output_bytes=20_000)
    video_id = await rig.submit("short_12s")
    async with rig.running(settings):
        (event,) = await rig.events(1, timeout=120)
    assert event["type"] == "rejected" and event["video_id"] == video_id, event
    assert event["reason"] == "output_too_large"
    assert await rig.keys("processed/") == []


async def test_a_job_that_times_out_again_is_rejected_as_too_slow(rig_factory, tools) -> None:
    # Five attempts allowed; the second timeout ends it.
    async with rig_factory(max_receive_count=5) as rig:
        retried = tools.metric("processor_jobs_total", outcome="retried")
        video_id = await rig.submit("medium_20s")
        async with rig.running(rig.settings(ffmpeg_timeout_seconds=0.2)):
            (event,) = await rig.events(1, timeout=60)
            await tools.eventually(lambda: _empty(rig), timeout=10, what="the message deleted")
        assert event["type"] == "rejected" and event["video_id"] == video_id, event
        assert event["reason"] == "too_slow"
        assert tools.metric("processor_jobs_total", outcome="retried") == retried + 1
        visible, _ = await rig.queue_counts(rig.resources.dlq_url)
        assert visible == 0


def test_ffmpeg_threads_are_bounded_by_default(rig, tmp_path) -> None:
    settings = rig.settings()
    assert settings.ffmpeg_threads > 0
    command = media.encode_command(
        "ffmpeg", tmp_path / "in.mp4", tmp_path / "out.mp4", tmp_path / "out.jpg",
        media.Encoding.of(settings),
    )  # fmt: skip
    source = command.index(str(tmp_path / "in.mp4"))
    encoder = command.index("libx264")
    threads = [i for i, arg in enumerate(command) if arg == "-threads"]
    # The decoder's (an input option, before the source) and x264's (after the codec).
    assert any(i < source for i in threads) and any(i > encoder for i in threads)
    assert all(command[i + 1] == str(settings.ffmpeg_threads) for i in threads)
    assert command[command.index("-filter_complex_threads") + 1] == str(settings.ffmpeg_threads)
    assert command[command.index("-fs") + 1] == str(settings.max_output_bytes)


@pytest.mark.parametrize(
    ("line", "rate"),
    [
        ("yuv420p(progressive), 1920x1080, 9500 kb/s, 29.97 fps, 29.97 tbr, 30k tbn", 29.97),
        ("yuv420p, 1920x1080 [SAR 1:1 DAR 16:9], 240 fps, 240 tbr, 90k tbn (default)", 240.0),
        ("yuv420p, 640x360, 1k fps, 1k tbr, 16k tbn", 1000.0),
        ("yuv420p, 640x360, 25 tbr, 12800 tbn", 25.0),
    ],
)
def test_the_probe_reads_the_stated_frame_rate(line, rate) -> None:
    stderr = f"Input #0, mov\n  Stream #0:0[0x1](und): Video: h264 (High), {line}\n"
    probe = media.parse_probe(stderr, "frame=1\n")
    assert probe.frame_rate == pytest.approx(rate)


async def test_outputs_are_streamed_to_s3_not_read_into_memory(rig, tmp_path) -> None:
    # A 48 MiB output; what the upload allocates in Python stays a small part of it.
    output = tmp_path / "big.mp4"
    with output.open("wb") as file:
        for _ in range(48):
            file.write(b"\x00" * (1024 * 1024))
    pipeline = Pipeline(rig.settings(), rig.s3, "ffmpeg")
    tracemalloc.start()
    try:
        size = await pipeline._upload(output, "processed/big.mp4", "video/mp4", {"a": "b"})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert size == output.stat().st_size
    head = await rig.s3.head_object(Bucket=rig.resources.bucket, Key="processed/big.mp4")
    assert head["ContentLength"] == size
    assert peak < size / 4, f"peak {peak / 2**20:.1f} MiB for a {size / 2**20:.0f} MiB output"


def test_the_bitrate_cap_bounds_x264_and_zero_turns_it_off(rig, tmp_path) -> None:
    # A noisy source at the fast presets' CRF would otherwise cost viewers its bytes.
    def command(**changes) -> list[str]:
        settings = rig.settings(**changes)
        return media.encode_command(
            "ffmpeg", tmp_path / "in.mp4", tmp_path / "out.mp4", tmp_path / "out.jpg",
            media.Encoding.of(settings),
        )  # fmt: skip

    capped = command(ffmpeg_maxrate_kbps=3000)
    assert capped[capped.index("-maxrate") + 1] == "3000k"
    assert capped[capped.index("-bufsize") + 1] == "6000k"
    assert capped.index("-maxrate") > capped.index("libx264")
    assert "-maxrate" not in command(ffmpeg_maxrate_kbps=0)


FAKE_STREAM = "Stream #0:0: Video: h264, 64x64, 30 fps"


def _lying_clip(path, *metadata: str):
    """1080p at 240 frames/s (a quarter second), whose container metadata says otherwise."""
    clips.make_clip(path, seconds=0.25, size="1920x1080", fps=240)
    lied = path.with_name(f"lie-{path.name}")
    args = ["-i", str(path), "-c", "copy", "-movflags", "use_metadata_tags"]
    for tag in metadata:
        args += ["-metadata", tag]
    clips.run(*args, str(lied))
    return lied


async def _probe_and_check(rig, path) -> media.Probe:
    settings = rig.settings()
    probe = await media.probe(clips.ffmpeg(), path, time_limit=60)
    media.check_cost(
        probe, max_pixels=settings.max_picture_pixels, max_frame_rate=settings.max_frame_rate
    )
    return probe


async def test_a_title_posing_as_a_stream_line_does_not_hide_a_high_frame_rate(
    rig, tmp_path
) -> None:
    lied = _lying_clip(tmp_path / "fast.mp4", f"title={FAKE_STREAM}", f"comment=x\n  {FAKE_STREAM}")
    with pytest.raises(Rejected) as caught:
        await _probe_and_check(rig, lied)
    assert caught.value.reason == Reason.FRAME_RATE_TOO_HIGH, caught.value


async def test_a_metadata_key_that_forges_whole_lines_is_refused(rig, tmp_path) -> None:
    # A tag's key is printed raw, newlines included: it can write a line exactly like ffmpeg's.
    forged = f"k\n  {FAKE_STREAM}\n  Duration: 00:00:30.00\nStream mapping:\n  x=y"
    lied = _lying_clip(tmp_path / "fast.mp4", forged)
    with pytest.raises(Rejected) as caught:
        await _probe_and_check(rig, lied)
    assert caught.value.reason == Reason.NOT_A_VIDEO, caught.value
    assert caught.value.detail == media.FORGED


async def test_an_honest_clip_probes_as_what_it_is(rig, tmp_path) -> None:
    path = clips.make_clip(tmp_path / "honest.mp4", seconds=0.5, size="320x240", tone=True)
    probe = await _probe_and_check(rig, path)
    assert (probe.width, probe.height, probe.frame_rate, probe.has_audio) == (320, 240, 30, True)
    assert probe.duration == pytest.approx(0.5, abs=0.1)
