"""Video files for tests and benchmarks, generated with the real ffmpeg: test patterns of any
size, rate and length, with or without a tone, and the broken files a validator must refuse.
`Cache` makes each named clip once, on first use."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path


@cache
def ffmpeg() -> str:
    """FFMPEG_PATH, else `ffmpeg` on PATH, else the imageio-ffmpeg wheel's (as the processor)."""
    configured = os.environ.get("FFMPEG_PATH")
    if configured:
        return configured
    found = shutil.which("ffmpeg")
    if found:
        return found
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def run(*args: str) -> None:
    subprocess.run([ffmpeg(), "-hide_banner", "-nostdin", "-v", "error", "-y", *args], check=True)


def make_clip(
    path: Path,
    *,
    seconds: float = 2,
    size: str = "640x360",
    fps: float = 30,
    picture: str = "testsrc2",
    filters: str = "",
    tone: bool = False,
    preset: str = "ultrafast",
    video: tuple[str, ...] = ("-pix_fmt", "yuv420p"),
    audio: tuple[str, ...] = ("-c:a", "aac"),
    faststart: bool = False,
) -> Path:
    """An H.264 MP4 of a lavfi `picture` (a source name, or one with its own options such as
    `color=c=blue`), optionally through `filters` and with a 440 Hz tone; `video` holds the
    encoder's other options (rate control, pixel format)."""
    joiner = ":" if "=" in picture else "="
    source = f"{picture}{joiner}s={size}:r={fps}:d={seconds}"
    args = ["-f", "lavfi", "-i", source]
    if tone:
        args += ["-f", "lavfi", "-i", f"sine=f=440:d={seconds}"]
    if filters:
        args += ["-vf", filters]
    args += ["-c:v", "libx264", "-preset", preset, *video]
    args += [*audio, "-shortest"] if tone else []
    args += ["-movflags", "+faststart"] if faststart else []
    run(*args, str(path))
    return path


def square_pattern(path: Path, *, size: str, square: int, seconds: float = 3) -> Path:
    """A blue picture with a white square in the middle: a stretch shows as a rectangle."""
    box = f"drawbox=x=(iw-{square})/2:y=(ih-{square})/2:w={square}:h={square}:c=white:t=fill"
    return make_clip(path, size=size, seconds=seconds, picture="color=c=0x2060c0", filters=box)


def audio_only(path: Path, *, seconds: float = 3, cover: Path | None = None) -> Path:
    """Sound only; with `cover`, a picture attached as cover art (a picture stream, no video)."""
    args = ["-f", "lavfi", "-i", f"sine=d={seconds}"]
    if cover is not None:
        args += ["-i", str(cover), "-map", "0", "-map", "1", "-c:v", "png"]
        args += ["-disposition:v", "attached_pic"]
    run(*args, "-c:a", "aac", str(path))
    return path


def garble_media_data(source: Path, target: Path) -> Path:
    """A valid MP4 header over random picture data: opens, never decodes."""
    data = bytearray(source.read_bytes())
    offset = 0
    while offset < len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if kind == b"mdat":
            data[offset + 8 : offset + size] = os.urandom(size - 8)
        offset += size
    target.write_bytes(bytes(data))
    return target


class Cache:
    """Named clips under `root`, each made by its recipe on first use (then reused)."""

    def __init__(self, root: Path, recipes: Mapping[str, Callable[[Path], object]]) -> None:
        self.root = root
        self.recipes = dict(recipes)

    def get(self, name: str) -> Path:
        path = self.root / f"{name}.mp4"
        if not path.exists():
            self.root.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(".part.mp4")
            self.recipes[name](partial)
            partial.rename(path)
        return path

    __getitem__ = get
