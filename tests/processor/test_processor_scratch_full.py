"""A full scratch disk (WORK_DIR) is the worker's own problem, never the video's: the job comes
back (a fresh copy on its last delivery, so it never reaches the dead-letter queue), the worker
is not ready while its disk has no room, and the video ends processed once space is freed. On a
real tmpfs mounted for the test (as root, like CI), full for the original or only for ffmpeg."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

PAGE = 4096


@contextlib.contextmanager
def tmpfs(path: Path, size: int) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.mark.parametrize("full_for", ["download", "encode"])
async def test_a_full_scratch_disk_hands_the_job_back_until_space_is_freed(
    rig_factory, tools, tmp_path, full_for
) -> None:
    # maxReceiveCount 2: without the fresh copy, the third attempt would be a dead letter.
    async with rig_factory(max_receive_count=2) as rig:
        source = rig.clips.get("tiny").stat().st_size
        # Smaller than the original, or the original and a page or two (ffmpeg's output won't fit).
        size = PAGE * 4 if full_for == "download" else (source // PAGE + 3) * PAGE
        with tmpfs(tmp_path / "scratch", size) as scratch:
            handed_back = tools.metric("processor_jobs_total", outcome="no_space")
            failed = tools.metric("processor_jobs_total", outcome="failed")
            video_id = await rig.submit("tiny")
            async with rig.running(rig.settings(work_dir=str(scratch))) as app:
                await tools.eventually(
                    lambda: (
                        tools.metric("processor_jobs_total", outcome="no_space") >= handed_back + 3
                    ),
                    timeout=90,
                    what="three attempts handed back on a full disk",
                )
                with pytest.raises(RuntimeError, match="scratch"):
                    await app.state.worker.check()
                subprocess.run(["mount", "-o", "remount,size=64m", str(scratch)], check=True)
                (event,) = await rig.events(1, timeout=120)
                await app.state.worker.check()  # ready again
            assert sorted(p.name for p in scratch.iterdir()) == []
        assert event["type"] == "processed" and event["video_id"] == video_id
        assert tools.metric("processor_jobs_total", outcome="failed") == failed
        assert await rig.queue_counts() == (0, 0)
        assert await rig.queue_counts(rig.resources.dlq_url) == (0, 0)
