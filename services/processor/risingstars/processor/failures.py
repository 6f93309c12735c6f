"""How a job can fail. The line between the two kinds: only the video's own bytes may reject it;
anything else (storage, queues, ffmpeg killed, our own bugs) is retried and, after the last
attempt, reported as failed."""

from __future__ import annotations


class Rejected(Exception):
    """The input can never be processed (not a video, no picture, undecodable)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Transient(Exception):
    """Worth another attempt later; `reason` says what went wrong, for the failed event."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
