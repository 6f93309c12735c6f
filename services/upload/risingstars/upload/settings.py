"""The upload service's configuration, read once from the environment."""

from __future__ import annotations

import dataclasses
import os
import tempfile

from risingstars.kit import settings as kit_settings
from risingstars.kit.settings import AWSSettings, HTTPSettings, TokenSettings

MiB = 1024 * 1024
# S3 refuses multipart parts under 5 MiB (except the last one).
S3_MIN_PART_BYTES = 5 * MiB


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings(HTTPSettings, TokenSettings, AWSSettings):
    database_url: str
    jwks_url: str
    s3_bucket: str
    jobs_queue_url: str
    events_queue_url: str
    max_upload_bytes: int = 104_857_600
    min_duration_seconds: float = 20
    max_duration_seconds: float = 60
    min_short_side_px: int = 1080
    presign_ttl_seconds: int = 3600
    # A CDN/media base for processed outputs only (video, thumbnail); unset: presigned links.
    media_base_url: str | None = None
    rankings_cache_seconds: float = 60
    # Parts past the memory buffers spill here (an emptyDir in the chart).
    upload_spill_dir: str = os.path.join(tempfile.gettempdir(), "risingstars-upload-spill")
    upload_spill_bytes: int = 1024 * MiB
    upload_idle_seconds: float = 30
    # Sized for the acceptance plan (300 closed-loop users, 12.5 MB each, no retries) on one
    # replica: a full queue drains in well under a minute, and 120 s leaves room for a slow S3
    # while staying under the load balancer's idle timeout.
    upload_admission_wait_seconds: float = 120
    upload_deadline_seconds: float = 1800
    upload_max_per_user: int = 3

    # Extensions (not in the conventions table; defaults fit production).
    # The AWS SDKs' own name for an SQS-only endpoint override.
    aws_endpoint_url_sqs: str | None = None
    # 2 memory parts of the smallest size S3 takes (10 MiB) beside an idle process of about
    # 108 MB RSS; each connection adds its own (an upload waiting for room about 50 KB).
    upload_part_bytes: int = S3_MIN_PART_BYTES
    upload_buffer_bytes: int = 2 * S3_MIN_PART_BYTES
    upload_parts_in_flight: int = 3
    max_moov_bytes: int = 8 * MiB
    db_pool_size: int = 20
    db_acquire_timeout_seconds: float = 5.0
    direct_complete_seconds: float = 60.0
    upload_daily_quota: int = 50
    outbox_poll_seconds: float = 1.0
    outbox_max_backoff_seconds: float = 60.0
    outbox_grace_seconds: float = 30.0
    events_wait_seconds: int = 20
    direct_upload_ttl_seconds: int = 86_400
    cleanup_interval_seconds: float = 3600.0
    max_open_uploads_per_user: int = 5
    queue_refresh_seconds: float = 5.0
    queue_service_window: int = 20

    def validate(self) -> None:
        problems = []
        if self.upload_part_bytes < S3_MIN_PART_BYTES:
            problems.append(f"UPLOAD_PART_BYTES must be at least {S3_MIN_PART_BYTES}")
        if self.upload_buffer_bytes < self.upload_part_bytes:
            problems.append("UPLOAD_BUFFER_BYTES must hold at least one part")
        if self.upload_parts_in_flight < 1:
            problems.append("UPLOAD_PARTS_IN_FLIGHT must be at least 1")
        if self.upload_spill_bytes < 0:
            problems.append("UPLOAD_SPILL_BYTES must not be negative")
        if not 0 < self.upload_idle_seconds <= self.upload_deadline_seconds:
            problems.append("UPLOAD_IDLE_SECONDS must be positive and not above the deadline")
        if self.upload_admission_wait_seconds < 0:
            problems.append("UPLOAD_ADMISSION_WAIT_SECONDS must not be negative")
        if self.upload_max_per_user < 1:
            problems.append("UPLOAD_MAX_PER_USER must be at least 1")
        if self.max_upload_bytes < 1:
            problems.append("MAX_UPLOAD_BYTES must be positive")
        if not 0 < self.min_duration_seconds <= self.max_duration_seconds:
            problems.append("MIN_DURATION_SECONDS must be positive and not above the maximum")
        if self.upload_daily_quota < 1 or self.max_open_uploads_per_user < 1:
            problems.append("UPLOAD_DAILY_QUOTA and MAX_OPEN_UPLOADS_PER_USER must be at least 1")
        if self.db_acquire_timeout_seconds <= 0 or self.direct_complete_seconds <= 0:
            problems.append("DB_ACQUIRE_TIMEOUT_SECONDS and DIRECT_COMPLETE_SECONDS must be > 0")
        if not 1 <= self.events_wait_seconds <= 20:
            problems.append("EVENTS_WAIT_SECONDS must be between 1 and 20 (SQS long polling)")
        if self.queue_refresh_seconds <= 0 or self.queue_service_window < 1:
            problems.append("QUEUE_REFRESH_SECONDS must be > 0, QUEUE_SERVICE_WINDOW at least 1")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def buffer_count(self) -> int:
        return max(1, self.upload_buffer_bytes // self.upload_part_bytes)

    def sqs_settings(self) -> AWSSettings:
        return AWSSettings(
            aws_region=self.aws_region,
            aws_endpoint_url=self.aws_endpoint_url_sqs or self.aws_endpoint_url,
        )


def load() -> Settings:
    return kit_settings.load(Settings)
