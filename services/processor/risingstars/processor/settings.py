"""The processor's configuration: the processor row of docs/conventions.md plus the knobs of the
worker loop, read once at start-up."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from risingstars.kit import settings as kit_settings
from risingstars.kit.settings import AWSSettings, HTTPSettings

ASSETS = Path(__file__).parent / "assets"

# SQS limits: a message's visibility may not exceed 12 h, a long poll 20 s.
_MAX_VISIBILITY = 43200
_MAX_WAIT = 20
_PRESETS = {
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"
}  # fmt: skip
_SCALERS = {"fast_bilinear", "bilinear", "bicubic", "area", "lanczos", "spline"}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings(HTTPSettings, AWSSettings):
    s3_bucket: str
    jobs_queue_url: str
    events_queue_url: str
    concurrency: int = 1
    ffmpeg_path: str | None = None
    # Used when the jobs queue's redrive policy cannot be read; the queue's maxReceiveCount wins.
    max_attempts: int = 5
    # The AWS SDKs' standard name for an S3-only endpoint (S3 and SQS served apart, e.g. MinIO).
    aws_endpoint_url_s3: str | None = None
    # A job's lease on its message, renewed every heartbeat while it runs.
    visibility_timeout_seconds: int = 120
    heartbeat_seconds: float = 30.0
    # Backoff after a transient failure: base * 2^(attempt-1), capped, with jitter.
    retry_base_seconds: float = 30.0
    retry_max_seconds: float = 900.0
    receive_wait_seconds: int = 20
    work_dir: str = "/tmp"  # noqa: S108  # an emptyDir in the pod; one private subdirectory per job
    logo_card_path: str = str(ASSETS / "card.png")
    watermark_path: str = str(ASSETS / "watermark.png")
    # The cost/quality/size point measured by `make bench ENTRY=encode` (see
    # media.encode_command): ultrafast at CRF 27 with a 4000 kbit/s cap saves a quarter of the
    # CPU at the same SSIM but makes 1.7x the bytes, which cost more than that CPU once served.
    ffmpeg_preset: str = "veryfast"
    ffmpeg_crf: int = 23
    # swscale's algorithm for the downscale; bilinear saves ~8 % CPU but costs ~5 VMAF points.
    ffmpeg_scaler: str = "bicubic"
    # Threads for ffmpeg's decoder, filters and x264 each (0: ffmpeg picks one per node core).
    ffmpeg_threads: int = 2
    # Extra x264 options (key=value:key=value), beyond the preset.
    ffmpeg_x264_params: str = ""
    # x264's bitrate cap in kbit/s (VBV, with a 2 s buffer); 0 for none.
    ffmpeg_maxrate_kbps: int = 0
    ffmpeg_timeout_seconds: float = 600.0
    # A redelivered job whose ffmpeg times out again (from this attempt on) is rejected as too
    # slow instead of costing FFMPEG_TIMEOUT_SECONDS per remaining attempt.
    too_slow_attempts: int = 2
    # What a video may cost: bigger pictures or higher rates are rejected before encoding
    # (4096x2160 and 60 frames/s: phones' 4K; slow motion is refused), bigger outputs stopped.
    max_picture_pixels: int = 4096 * 2160
    max_frame_rate: float = 60.0
    max_output_bytes: int = 100 * 1024 * 1024
    # Where the thumbnail is taken in the main content. Later costs memory: ffmpeg holds that
    # many seconds of 720p frames while the intro is being encoded.
    thumbnail_seconds: float = 1.0
    # A safety net for the scratch disk; the upload service enforces the real limit.
    max_source_bytes: int = 1024 * 1024 * 1024

    def validate(self) -> None:
        problems = []
        for name in ("s3_bucket", "jobs_queue_url", "events_queue_url"):
            if not getattr(self, name).strip():
                problems.append(f"{name.upper()} must not be empty")
        if self.concurrency < 1:
            problems.append("CONCURRENCY must be at least 1")
        if self.max_attempts < 1:
            problems.append("MAX_ATTEMPTS must be at least 1")
        if not 1 <= self.visibility_timeout_seconds <= _MAX_VISIBILITY:
            problems.append(f"VISIBILITY_TIMEOUT_SECONDS must be within 1..{_MAX_VISIBILITY}")
        if not 0 < self.heartbeat_seconds < self.visibility_timeout_seconds:
            problems.append(
                "HEARTBEAT_SECONDS must be positive and below VISIBILITY_TIMEOUT_SECONDS"
            )
        if not 0 < self.retry_base_seconds <= self.retry_max_seconds <= _MAX_VISIBILITY:
            problems.append(
                f"need 0 < RETRY_BASE_SECONDS <= RETRY_MAX_SECONDS <= {_MAX_VISIBILITY}"
            )
        if not 0 <= self.receive_wait_seconds <= _MAX_WAIT:
            problems.append(f"RECEIVE_WAIT_SECONDS must be within 0..{_MAX_WAIT}")
        if self.ffmpeg_preset not in _PRESETS:
            problems.append(f"FFMPEG_PRESET must be one of the x264 presets: {sorted(_PRESETS)}")
        if self.ffmpeg_scaler not in _SCALERS:
            problems.append(f"FFMPEG_SCALER must be one of {', '.join(sorted(_SCALERS))}")
        if not 0 <= self.ffmpeg_crf <= 51:
            problems.append("FFMPEG_CRF must be within 0..51")
        if min(self.ffmpeg_threads, self.ffmpeg_maxrate_kbps) < 0 or self.too_slow_attempts < 1:
            problems.append(
                "FFMPEG_THREADS and FFMPEG_MAXRATE_KBPS must be >= 0, TOO_SLOW_ATTEMPTS >= 1"
            )
        if min(self.max_picture_pixels, self.max_frame_rate, self.max_output_bytes) <= 0:
            problems.append("MAX_PICTURE_PIXELS, MAX_FRAME_RATE, MAX_OUTPUT_BYTES must be positive")
        if self.ffmpeg_timeout_seconds <= 0 or self.shutdown_timeout_seconds < 0:
            problems.append("timeouts must be positive")
        if self.thumbnail_seconds < 0 or self.max_source_bytes <= 0:
            problems.append("THUMBNAIL_SECONDS and MAX_SOURCE_BYTES must be positive")
        for name in ("logo_card_path", "watermark_path"):
            if not Path(getattr(self, name)).is_file():
                problems.append(f"{name.upper()}={getattr(self, name)!r} is not a file")
        if not Path(self.work_dir).is_dir():
            problems.append(f"WORK_DIR={self.work_dir!r} is not a directory")
        if problems:
            raise ValueError("; ".join(problems))


def load() -> Settings:
    return kit_settings.load(Settings)
