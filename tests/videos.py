"""Real MP4 clips for the end-to-end tests, made by the shared generator (risingstars.dev.clips)."""

from __future__ import annotations

from pathlib import Path

from risingstars.dev import clips


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
    return clips.make_clip(
        path,
        seconds=seconds,
        size=size,
        fps=fps,
        tone=audio,
        video=("-crf", "40", "-pix_fmt", "yuv420p"),
        audio=("-c:a", "aac", "-b:a", "32k"),
        faststart=faststart,
    )
