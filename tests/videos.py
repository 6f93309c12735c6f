"""Real MP4 clips generated with ffmpeg for tests (cached per test session by their parameters)."""

from __future__ import annotations

import shutil
import subprocess
from functools import cache
from pathlib import Path

import imageio_ffmpeg


@cache
def ffmpeg() -> str:
    return shutil.which("ffmpeg") or imageio_ffmpeg.get_ffmpeg_exe()


def make_clip(
    path: Path,
    *,
    seconds: float = 21,
    size: str = "1920x1080",
    fps: int = 15,
    audio: bool = True,
    faststart: bool = True,
) -> Path:
    """A small H.264 MP4 (test pattern, optional tone) of the given length and picture size."""
    args = [
        ffmpeg(),
        "-v",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=size={size}:rate={fps}:duration={seconds}",
    ]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}"]
    args += ["-c:v", "libx264", "-preset", "ultrafast", "-crf", "40", "-pix_fmt", "yuv420p"]
    if audio:
        args += ["-c:a", "aac", "-b:a", "32k", "-shortest"]
    if faststart:
        args += ["-movflags", "+faststart"]
    subprocess.run([*args, str(path)], check=True)
    return path
