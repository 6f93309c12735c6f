"""What one upload process takes at once, and how it says no.

Uploads (streamed, and tus requests) are refused up front (before their body is read) when the
caller already has `max_per_user` of them running (429), or when no room to hold a part came
within the part store's admission wait (503, spill.PartStore.admit); a running one is cut off
when its client goes quiet or it outlives its deadline (408). The per-user count is per
process: behind N replicas a user may run up to N times as many.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from risingstars.kit import errors
from risingstars.upload import messages

RETRY_AFTER_SECONDS = 5


class Refused(errors.ServiceError):
    """An upload the process will not take or keep: the kit answers `status_code` with the
    Spanish `detail`, `reason` as the code, and Retry-After when it is worth trying again."""

    status_code = 503
    outcome = "failed"

    def __init__(self, reason: str, detail: str, *, retry_after: int | None = None) -> None:
        super().__init__(detail, code=reason)
        self.reason = reason
        self.retry_after = retry_after

    def headers(self) -> dict[str, str] | None:
        return None if self.retry_after is None else {"Retry-After": str(self.retry_after)}


class Busy(Refused):
    """Neither memory nor the spill directory had room for another upload within the wait."""

    def __init__(self) -> None:
        super().__init__("busy", messages.UPLOADS_BUSY, retry_after=RETRY_AFTER_SECONDS)


class TooManyUploads(Refused):
    status_code = 429
    outcome = "rejected"

    def __init__(self, limit: int) -> None:
        super().__init__(
            "per_user", messages.too_many_uploads(limit), retry_after=RETRY_AFTER_SECONDS
        )


class TimedOut(Refused):
    """The client sent nothing for too long (reason "idle"), or the upload ran out of time."""

    status_code = 408
    outcome = "aborted"


class UserSlots:
    """Streamed uploads running per user, at most `limit` each."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._running: dict[str, int] = {}

    @contextlib.contextmanager
    def hold(self, user: str) -> Iterator[None]:
        running = self._running.get(user, 0)
        if running >= self.limit:
            raise TooManyUploads(self.limit)
        self._running[user] = running + 1
        try:
            yield
        finally:
            left = self._running[user] - 1
            if left:
                self._running[user] = left
            else:
                del self._running[user]
