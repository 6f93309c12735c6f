"""ffmpeg: where it is, what an input holds, and the one command that makes the processed video.

The input is probed with the same ffmpeg binary that will encode it (the imageio-ffmpeg wheel
has no ffprobe), so what the probe accepts is exactly what the encoder can read. The probe reads
the container header from ffmpeg's log and decodes the first picture; the decoded-frame count
comes from `-progress`, ffmpeg's machine-readable key=value output.

The log mixes ffmpeg's description with the file's own metadata, printed raw (a tag's key may
hold newlines), so a file can write lines that look like ffmpeg's. Only the top-level lines of
the input's description are read (`  Duration:`, `  Stream #0:N`), and a description in which
they repeat or skip a stream number is refused rather than guessed at.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import logging
import os
import re
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

from risingstars.jobs import Reason
from risingstars.processor.failures import Rejected, TimedOut, Transient

log = logging.getLogger("risingstars.processor.media")

WIDTH, HEIGHT, FPS = 1280, 720, 30
MAX_CONTENT_SECONDS = 30.0
CARD_SECONDS = 2.5
WATERMARK_MARGIN = 24
_THUMBNAIL_STEP = 10
# What is kept of ffmpeg's log: the head holds the input's description, the tail the error.
_STDERR_HEAD = 64 * 1024
_STDERR_TAIL = 4000

NOT_MP4 = "not an MP4 file"
NO_VIDEO = "no video track"
UNDECODABLE = "the first picture does not decode"

FORGED = "the container's description is ambiguous (metadata posing as stream lines)"

# Anchored to ffmpeg's own two-space indentation of the input's description (dump.c).
_DURATION = re.compile(r"^  Duration: (\d+):(\d{2}):(\d{2}(?:\.\d+)?)", re.MULTILINE)
_STREAM = re.compile(r"^  Stream #0:(\d+)\S*: (\w+): (.*)$", re.MULTILINE)
_VIDEO = re.compile(r"(\w+).*?, (\d{1,5})x(\d{1,5})[\s,]")
# ffmpeg prints rates as "29.97 fps", "30 tbr", "1k fps" (print_fps in fftools).
_RATE = re.compile(r", (\d+(?:\.\d+)?)(k?) (?:fps|tbr)\b")
# Ends the input's description; the output's, after it, carries no metadata (-map_metadata -1).
_MAPPING = "\nStream mapping:\n"
_FRAMES = re.compile(r"^frame=(\d+)$", re.MULTILINE)

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def _die_with_parent() -> None:
    # A worker killed with SIGKILL must not leave its ffmpeg running (and writing) behind.
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def locate_ffmpeg(configured: str | None) -> str:
    """FFMPEG_PATH, else `ffmpeg` on PATH, else the static binary of the imageio-ffmpeg wheel."""
    if configured:
        if not (os.path.isfile(configured) and os.access(configured, os.X_OK)):
            raise RuntimeError(f"FFMPEG_PATH={configured!r} is not an executable file")
        return configured
    found = shutil.which("ffmpeg")
    if found:
        return found
    import imageio_ffmpeg  # the fallback only: a PATH ffmpeg needs no wheel

    return imageio_ffmpeg.get_ffmpeg_exe()


@dataclasses.dataclass(frozen=True)
class Completed:
    returncode: int
    stdout: str
    stderr_head: str
    stderr_tail: str
    stderr_truncated: bool = False

    @property
    def killed_by(self) -> int | None:
        return -self.returncode if self.returncode < 0 else None


async def run(args: list[str], *, time_limit: float) -> Completed:
    """Run ffmpeg to completion. On timeout or cancellation ffmpeg is stopped and reaped before
    this returns or raises, so no job leaves a process behind."""
    proc = await asyncio.create_subprocess_exec(
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=_die_with_parent,
    )
    try:
        async with asyncio.timeout(time_limit):
            out, err = await proc.communicate()
    except TimeoutError:
        await _stop(proc)
        raise TimedOut(f"ffmpeg ran past {time_limit:g} s") from None
    finally:
        if proc.returncode is None:  # cancelled: hand the job back with nothing running
            await _stop(proc)
    return Completed(
        proc.returncode,
        out.decode(errors="replace"),
        err[:_STDERR_HEAD].decode(errors="replace"),
        err[-_STDERR_TAIL:].decode(errors="replace"),
        len(err) > _STDERR_HEAD,
    )


async def _stop(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), 3)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


async def version(ffmpeg: str) -> str:
    result = await run([ffmpeg, "-hide_banner", "-version"], time_limit=30)
    if result.returncode != 0:
        raise RuntimeError(f"{ffmpeg} -version failed: {result.stderr_tail.strip()}")
    return result.stdout.splitlines()[0] if result.stdout else "ffmpeg"


@dataclasses.dataclass(frozen=True)
class Probe:
    duration: float | None
    width: int
    height: int
    codec: str
    has_audio: bool
    # The highest rate the header states (average or base), 0 when it states none.
    frame_rate: float = 0.0


def _description(stderr: str) -> str:
    """The input's description: from `Input #0` to the last `Stream mapping:` (a forged one can
    only come earlier, inside the input's metadata)."""
    start = stderr.find("Input #0")
    if start < 0 or not (start == 0 or stderr[start - 1] == "\n"):
        raise Rejected(Reason.NOT_A_VIDEO, NOT_MP4)
    end = stderr.rfind(_MAPPING)
    return stderr[start : end if end > start else len(stderr)]


def parse_probe(stderr: str, progress: str) -> Probe:
    """What `ffmpeg -i` printed about the input; Rejected when it is not a decodable video."""
    description = _description(stderr)
    streams = _STREAM.findall(description)
    durations = _DURATION.findall(description)
    # Real stream lines are numbered 0, 1, 2... once each; metadata posing as one breaks that.
    if [int(n) for n, _, _ in streams] != list(range(len(streams))) or len(durations) > 1:
        raise Rejected(Reason.NOT_A_VIDEO, FORGED)
    # Cover art is a picture, not a video: ffmpeg's `V` stream specifier skips it too.
    video = next(
        (
            match
            for _, kind, rest in streams
            if kind == "Video" and "(attached pic)" not in rest and (match := _VIDEO.match(rest))
        ),
        None,
    )
    if video is None:
        raise Rejected(Reason.NOT_A_VIDEO, NO_VIDEO)
    frames = [int(n) for n in _FRAMES.findall(progress)]
    if not frames or frames[-1] < 1:
        raise Rejected(Reason.NOT_A_VIDEO, UNDECODABLE)
    duration = None
    if durations:
        h, m, s = durations[0]
        duration = int(h) * 3600 + int(m) * 60 + float(s)
    return Probe(
        duration=duration,
        width=int(video.group(2)),
        height=int(video.group(3)),
        codec=video.group(1),
        has_audio=any(kind == "Audio" for _, kind, _ in streams),
        frame_rate=max(
            (float(n) * (1000 if k else 1) for n, k in _RATE.findall(video.string)), default=0.0
        ),
    )


def check_cost(probe: Probe, *, max_pixels: int, max_frame_rate: float) -> None:
    """Decoding cost grows with picture size and frame rate, which the uploader chooses: past
    the limits the video is rejected before it is encoded."""
    if probe.width * probe.height > max_pixels:
        raise Rejected(
            Reason.PICTURE_TOO_LARGE,
            f"{probe.width}x{probe.height} is above the limit of {max_pixels} pixels",
        )
    if probe.frame_rate > max_frame_rate:
        raise Rejected(
            Reason.FRAME_RATE_TOO_HIGH,
            f"{probe.frame_rate:g} frames/s is above the limit of {max_frame_rate:g}",
        )


async def probe(ffmpeg: str, path: Path, *, time_limit: float) -> Probe:
    # -f mov: the contract accepts MP4 only, and pinning the demuxer keeps playlist and concat
    # formats (which can reference other files) from ever being opened.
    result = await run(
        [ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-progress", "pipe:1",
         "-f", "mov", "-i", str(path), "-map", "0:V:0", "-frames:v", "1",
         "-map_metadata", "-1", "-map_chapters", "-1", "-f", "null", "-"],
        time_limit=time_limit,
    )  # fmt: skip
    if result.killed_by is not None:
        raise Transient(f"ffmpeg killed by signal {result.killed_by} while probing")
    if result.stderr_truncated:  # metadata long enough to push the real lines out of the head
        raise Rejected(Reason.NOT_A_VIDEO, FORGED)
    return parse_probe(result.stderr_head, result.stdout)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Encoding:
    """What the encoding command is made of: the settings' FFMPEG_* knobs and limits."""

    card: str
    watermark: str
    thumbnail_at: float = 1.0
    preset: str = "veryfast"
    crf: int = 23
    scaler: str = "bicubic"
    # Threads of the decoder, the filter graph and x264 each; 0 lets ffmpeg pick (one per core
    # of the node, which in a pod is not the pod's share).
    threads: int = 0
    x264_params: str = ""
    # x264's VBV cap in kbit/s (0: none).
    maxrate_kbps: int = 0
    # Options for the source's decoder (e.g. -skip_loop_filter), before the input.
    decoder: tuple[str, ...] = ()
    scale_first: bool = False
    max_pixels: int = 2**31 - 1
    max_output_bytes: int = 2**62

    @classmethod
    def of(cls, settings: Any) -> Encoding:
        return cls(
            card=settings.logo_card_path,
            watermark=settings.watermark_path,
            thumbnail_at=settings.thumbnail_seconds,
            preset=settings.ffmpeg_preset,
            crf=settings.ffmpeg_crf,
            scaler=settings.ffmpeg_scaler,
            threads=settings.ffmpeg_threads,
            x264_params=settings.ffmpeg_x264_params,
            maxrate_kbps=settings.ffmpeg_maxrate_kbps,
            max_pixels=settings.max_picture_pixels,
            max_output_bytes=settings.max_output_bytes,
        )


def _fit_scale(scaler: str) -> str:
    # Fit by display aspect ratio (so anamorphic inputs come out right), even sizes for 4:2:0.
    fit_width = f"gte(dar,{WIDTH}/{HEIGHT})"
    return (
        f"scale=w='if({fit_width},{WIDTH},trunc({HEIGHT}*dar/2)*2)'"
        f":h='if({fit_width},trunc({WIDTH}/dar/2)*2,{HEIGHT})':out_range=tv:flags={scaler}"
    )


_PAD = f"pad={WIDTH}:{HEIGHT}:(ow-iw)/2:(oh-ih)/2:black,setsar=1"


# The graph's parts, each a chain with labelled ends, so the bench can cost them one by one.
def fit_chain(scaler: str = "bicubic", scale_first: bool = False) -> str:
    """[0] -> [fit]: the source at 30 fps, fitted and padded to 1280x720."""
    steps = [f"fps={FPS}", _fit_scale(scaler)]
    if scale_first:
        steps.reverse()
    return f"[0:V:0]setpts=PTS-STARTPTS,{','.join(steps)},{_PAD}[fit]"


# [fit] + [2]: the watermark in the bottom right corner (the chain's end is left open).
WATERMARK = f"[fit][2:v]overlay=x=W-w-{WATERMARK_MARGIN}:y=H-h-{WATERMARK_MARGIN},format=yuv420p"


def thumbnail_chain(thumbnail_at: float) -> str:
    """[still] -> [thumb]. Every 10th frame up to `thumbnail_at`, each overwriting the last
    (-update 1): the picture at that time, or the last one of a shorter clip, and nothing to
    learn about the input before starting. The branch ends there, so ffmpeg holds no frames
    back for it."""
    end = thumbnail_at + 0.5 / FPS
    return f"[still]trim=end={end:.4f},select='not(mod(n,{_THUMBNAIL_STEP}))'[thumb]"


def cards_chain() -> str:
    """[1] -> [intro] and [outro]. The card is decoded and converted once, then cloned: the
    clones share one picture, so the outro waiting in the concat costs no memory and no
    conversion work."""
    card_frames = round(CARD_SECONDS * FPS)
    return (
        f"[1:v]scale={WIDTH}:{HEIGHT}:force_original_aspect_ratio=decrease:out_range=tv,{_PAD},"
        f"format=yuv420p,tpad=stop={card_frames - 1}:stop_mode=clone,split=2[intro][outro]"
    )


CONCAT = "[intro][main][outro]concat=n=3:v=1:a=0[video]"


def filter_graph(thumbnail_at: float, scaler: str = "bicubic", scale_first: bool = False) -> str:
    return ";".join(
        [
            fit_chain(scaler, scale_first),
            f"{WATERMARK},split=2[main][still]",
            thumbnail_chain(thumbnail_at),
            cards_chain(),
            CONCAT,
        ]
    )


def encode_command(
    ffmpeg: str, source: Path, video: Path, thumbnail: Path, encoding: Encoding
) -> list[str]:
    """One ffmpeg pass: the first 30 s (the input is not decoded past them), fit and pad to
    1280x720 at 30 fps, no audio, the logo card for 2.5 s before and after, the watermark, H.264
    with the index first; and the thumbnail from the main content."""
    # Why these defaults (preset, CRF, threads, scaler): docs/decisions/encoding-defaults.md.
    e = encoding
    return [
        *source_args(ffmpeg, source, e),
        "-framerate", str(FPS), "-i", e.card,
        "-i", e.watermark,
        "-filter_complex", filter_graph(e.thumbnail_at, e.scaler, e.scale_first),
        "-map", "[video]", *x264_args(e),
        "-movflags", "+faststart", "-f", "mp4", str(video),
        "-map", "[thumb]", "-update", "1", "-q:v", "3", "-f", "image2", str(thumbnail),
    ]  # fmt: skip


def _threads(e: Encoding, option: str) -> list[str]:
    return [option, str(e.threads)] if e.threads else []


def source_args(ffmpeg: str, source: Path, e: Encoding) -> list[str]:
    """ffmpeg's options and the source as input 0, read no further than 30 s."""
    return [
        ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-v", "error", "-y",
        *_threads(e, "-filter_complex_threads"),
        # max_pixels: the decoder refuses pictures beyond the limit, also ones a stream
        # switches to after the header the probe checked.
        *_threads(e, "-threads"), *e.decoder,
        "-max_pixels", str(e.max_pixels),
        "-t", f"{MAX_CONTENT_SECONDS:g}", "-f", "mov", "-i", str(source),
    ]  # fmt: skip


def x264_args(e: Encoding) -> list[str]:
    """The video output's options: H.264 only, no other stream or metadata, size-bounded."""
    x264 = ["-x264-params", e.x264_params] if e.x264_params else []
    # A VBV cap (buffer of two seconds at the cap) bounds the bytes of noisy sources, which
    # the fast presets would otherwise spend freely at the CRF.
    cap = (
        ["-maxrate", f"{e.maxrate_kbps}k", "-bufsize", f"{2 * e.maxrate_kbps}k"]
        if e.maxrate_kbps
        else []
    )
    return [
        "-an", "-sn", "-dn", "-map_metadata", "-1", "-map_chapters", "-1",
        "-c:v", "libx264", "-preset", e.preset, "-crf", str(e.crf), *cap, *x264,
        *_threads(e, "-threads"), "-pix_fmt", "yuv420p", "-fs", str(e.max_output_bytes),
    ]  # fmt: skip


def describe_failure(result: Completed, what: str, **context: object) -> Transient:
    """ffmpeg's own words (with scratch paths in them) go to the log; the event gets a line."""
    if result.killed_by is not None:
        return Transient(f"ffmpeg killed by signal {result.killed_by} while {what}")
    log.warning(
        "ffmpeg failed",
        extra={**context, "what": what, "code": result.returncode, "stderr": result.stderr_tail},
    )
    return Transient(f"ffmpeg exited with code {result.returncode} while {what}")
