"""What one upload process takes at once, and how it says no (the kit's typed errors).

Uploads (streamed, and tus requests) are refused up front (before their body is read) when the
caller already has `max_per_user` of them running (429, code `per_user`), or when no room to
hold a part came within the part store's admission wait (503, code `busy`,
spill.PartStore.admit); a running one is cut off when its client goes quiet or it outlives its
deadline (408, code `idle` or `deadline`). The per-user count is per process: behind N replicas
a user may run up to N times as many.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from risingstars.kit import errors
from risingstars.upload import messages

RETRY_AFTER_SECONDS = 5
BUSY = "busy"


def busy() -> errors.Unavailable:
    """Neither memory nor the spill directory had room for another upload within the wait."""
    return errors.Unavailable(
        messages.UPLOADS_BUSY, retry_after_seconds=RETRY_AFTER_SECONDS, code=BUSY
    )


class UserSlots:
    """Streamed uploads running per user, at most `limit` each."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._running: dict[str, int] = {}

    @contextlib.contextmanager
    def hold(self, user: str) -> Iterator[None]:
        running = self._running.get(user, 0)
        if running >= self.limit:
            raise errors.TooMany(
                messages.too_many_uploads(self.limit),
                retry_after_seconds=RETRY_AFTER_SECONDS,
                code="per_user",
            )
        self._running[user] = running + 1
        try:
            yield
        finally:
            left = self._running[user] - 1
            if left:
                self._running[user] = left
            else:
                del self._running[user]
