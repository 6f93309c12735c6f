"""How a job can end other than processed. Each carries a stable `Reason` code (the contract
with the upload service, which shows owners a Spanish message per code) and an English `detail`
for logs and operators, never paths or ffmpeg's own words (those are logged where they arise).

The line between the kinds: only the video's own bytes may reject it (`Rejected`); a job with
nothing left to process ends at once (`Gone`); anything else (storage, queues, ffmpeg killed,
our own bugs) is retried (`Transient`) and, after the last attempt, reported as failed."""

from __future__ import annotations

from risingstars.jobs import Reason


class JobError(Exception):
    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class Rejected(JobError):
    """The input can never be processed, or costs more than a video may (no retry helps)."""


class Gone(JobError):
    """Nothing to process any more (the original was deleted): failed at once, no retry."""


class Transient(JobError):
    """Worth another attempt later."""

    def __init__(self, detail: str, reason: Reason = Reason.PROCESSING_FAILED) -> None:
        super().__init__(reason, detail)


class TimedOut(Transient):
    """ffmpeg ran past FFMPEG_TIMEOUT_SECONDS; a repeat of it rejects the video as too slow."""
