"""The video chart-boot uploads: a real MP4 from the project's shared clip generator, as small
as the upload service's defaults accept (20 s minimum, 1080-pixel short side)."""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path

from risingstars.dev.chartboot.manifests import ROOT


def _make_clip():
    try:
        from risingstars.dev.clips import make_clip  # the shared generator, once it lives here
    except ImportError:
        spec = importlib.util.spec_from_file_location("videos", ROOT / "tests" / "videos.py")
        videos = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(videos)
        make_clip = videos.make_clip
    return make_clip


def clip_bytes(seconds: float = 21, size: str = "1920x1080") -> bytes:
    with tempfile.TemporaryDirectory(prefix="chartboot-clip-") as tmp:
        path = _make_clip()(Path(tmp) / "clip.mp4", seconds=seconds, size=size, fps=5, audio=False)
        return path.read_bytes()
