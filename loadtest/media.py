"""The files the load test sends, generated once with ffmpeg and cached.

Upload clips: a real 2560×1440 H.264 MP4 (what the seed uploaded), grown to an exact size with a
trailing `free` box of random bytes, so every size costs one short encode and the service still
validates a real video. Worker inputs: real 2560×1440 encodes at the bitrate that gives ~50 MB and
~100 MB in 40 s, so ffmpeg's decode cost is that of such a file."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

import imageio_ffmpeg

MB = 1_000_000
ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("LOADTEST_CACHE", ROOT / ".dev" / "loadtest" / "media"))
WORKER_BITRATES = {50: "9500k", 100: "19M"}
WORKER_SECONDS = 40


def ffmpeg() -> str:
    return shutil.which("ffmpeg") or imageio_ffmpeg.get_ffmpeg_exe()


def _encode(path: Path, args: list[str]) -> Path:
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.stem + ".part.mp4")
    subprocess.run([ffmpeg(), "-hide_banner", "-v", "error", "-y", *args, str(partial)], check=True)
    partial.rename(path)
    return path


def base_clip(size: str, seconds: float, cache: Path = CACHE) -> Path:
    """A small real MP4 (test pattern and tone, moov first) of the given picture size."""
    return _encode(
        cache / f"base_{size}_{seconds:g}s.mp4",
        ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate=5:duration={seconds}",
         "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
         "-c:v", "libx264", "-preset", "ultrafast", "-crf", "45", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-b:a", "32k", "-shortest", "-movflags", "+faststart"],
    )  # fmt: skip


def padded(clip: Path, size: int, path: Path) -> Path:
    """`clip` followed by a `free` box (random bytes, so nothing on the way compresses it) making
    the file exactly `size` bytes; a valid MP4 that any reader skips to the end of."""
    if path.exists() and path.stat().st_size == size:
        return path
    data = clip.read_bytes()
    pad = size - len(data)
    if pad < 8:
        raise ValueError(f"{clip} is already {len(data)} bytes, more than {size}")
    partial = path.with_name(path.name + ".part")
    with partial.open("wb") as out:
        out.write(data)
        out.write(struct.pack(">I4s", pad, b"free"))
        remaining = pad - 8
        while remaining:
            chunk = os.urandom(min(remaining, 4 << 20))
            out.write(chunk)
            remaining -= len(chunk)
    partial.rename(path)
    return path


def upload_clips(
    sizes_mb: list[float], picture: str = "2560x1440", seconds: float = 25, cache: Path = CACHE
) -> list[Path]:
    """One cached file per size (MB, decimal); 0 means the bare clip itself."""
    clip = base_clip(picture, seconds, cache)
    out = []
    for mb in sizes_mb:
        if mb <= 0:
            out.append(clip)
        else:
            out.append(padded(clip, int(mb * MB), cache / f"upload_{picture}_{mb:g}mb.mp4"))
    return out


def worker_input(mb: int, cache: Path = CACHE) -> Path:
    bitrate = WORKER_BITRATES[mb]
    s = WORKER_SECONDS
    return _encode(
        cache / f"worker_2560x1440_{mb}mb.mp4",
        ["-f", "lavfi", "-i", f"testsrc2=s=2560x1440:r=30:d={s}",
         "-f", "lavfi", "-i", f"sine=f=440:d={s}", "-vf", "noise=alls=12:allf=t",
         "-c:v", "libx264", "-preset", "superfast", "-b:v", bitrate, "-maxrate", bitrate,
         "-bufsize", bitrate, "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", "-shortest"],
    )  # fmt: skip
