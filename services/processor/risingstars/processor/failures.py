"""How a job can end other than processed. Each carries a stable `Reason` code (the contract
with the upload service, which shows owners a Spanish message per code) and an English `detail`
for logs and operators, never paths or ffmpeg's own words (those are logged where they arise).

The line between the kinds: only the video's own bytes may reject it (`Rejected`); a job with
nothing left to process ends at once (`Gone`); anything else (storage, queues, ffmpeg killed,
our own bugs) is retried (`Transient`) and, after the last attempt, reported as failed. A full
scratch disk (`NoScratchSpace`) is the node's problem alone: retried without ever failing."""

from __future__ import annotations

import errno
import os

from risingstars.jobs import Reason

# ENOSPC, and EDQUOT where a quota rather than the disk ran out.
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}


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


class NoScratchSpace(Transient):
    """WORK_DIR is full (ENOSPC from writing the original or from ffmpeg): this worker's
    problem, not the video's. The job goes back to the queue and never counts towards failing."""


def no_space(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in _NO_SPACE


def ffmpeg_out_of_space(stderr: str) -> bool:
    return any(os.strerror(code) in stderr for code in _NO_SPACE)
