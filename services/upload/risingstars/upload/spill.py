"""Where a streamed upload's parts wait for S3: a few buffers in memory, then a bounded scratch
directory. Each process spills into its own subdirectory, held by a lock; those whose lock is
free belong to processes that died (an emptyDir outlives a container restart) and are removed.

A slow or stalled client may take for ever to fill a 5 MiB part, so a memory part idle for a
while moves to disk and its buffer goes to a newcomer. Each file part reserves a whole part of
the disk budget, so a part being filled can always be finished. When all is spoken for, running
uploads wait for a part to come back (one always does) and new ones wait behind them, unread,
for at most `admission_wait` seconds before a 503: closed-loop clients do not retry a 503, so
refusing at once would turn a moment of slow storage into failures."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import shutil
import tempfile
import time
import zlib
from collections import deque
from pathlib import Path

from risingstars.upload import capacity, metrics
from risingstars.upload.partbody import FileBody, PartBody

# A memory part this long without data is slow or stalled: its buffer goes to a faster upload.
RECLAIM_AFTER_SECONDS = 1.0
DIR_PREFIX = "proc-"
LOCK_NAME = ".lock"


class Part:
    """One S3 part: filled by the upload, then sent, then closed (which frees its room)."""

    def __init__(self, store: PartStore, buffer: bytearray | None) -> None:
        self._store = store
        self._buffer = buffer
        self._fd: int | None = None
        self.path: Path | None = None
        self.size = 0
        self.crc32 = 0  # of what the part holds, wherever it is held
        self.last_write = time.monotonic()
        self.closed = False

    @property
    def in_memory(self) -> bool:
        return self._buffer is not None

    @property
    def full(self) -> bool:
        return self.size >= self._store.part_bytes

    def write(self, data: memoryview) -> int:
        n = min(len(data), self._store.part_bytes - self.size)
        self.crc32 = zlib.crc32(data[:n], self.crc32)
        if self._buffer is not None:
            self._buffer[self.size : self.size + n] = data[:n]
        else:
            self._write_file(data[:n])
        self.size += n
        self.last_write = time.monotonic()
        return n

    def _write_file(self, data: memoryview) -> None:
        if not data:
            return
        if self._fd is None:
            fd, name = tempfile.mkstemp(suffix=".part", dir=self._store.dir)
            self._fd, self.path = fd, Path(name)
        while data:
            written = os.write(self._fd, data)
            data = data[written:]
            self._store.spilled(written)

    def seal(self) -> PartBody:
        """The part is complete: it stays where it is until sent, and may not move any more."""
        self._store.filling.discard(self)
        if self._buffer is not None:
            return PartBody(memoryview(self._buffer)[: self.size], self.crc32)
        if self._fd is None:
            return PartBody(memoryview(b""), self.crc32)
        return FileBody(self._fd, self.size, self.crc32)

    def to_disk(self) -> bytearray:
        """Move what the part holds to a file; return its buffer (the caller now owns it)."""
        buffer, self._buffer = self._buffer, None
        assert buffer is not None
        self._store.filling.discard(self)
        self._write_file(memoryview(buffer)[: self.size])
        return buffer

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        self._store.give_back(self)


class PartStore:
    """`memory_parts` buffers of `part_bytes`, then files up to `spill_bytes`."""

    def __init__(
        self,
        part_bytes: int,
        memory_parts: int,
        spill_root: str | Path,
        spill_bytes: int,
        *,
        admission_wait: float = 0,
        reclaim_after: float = RECLAIM_AFTER_SECONDS,
    ) -> None:
        self.part_bytes = part_bytes
        self.memory_parts = memory_parts
        self.spill_bytes = spill_bytes
        self.admission_wait = admission_wait
        self.reclaim_after = reclaim_after
        self.in_use = 0  # memory buffers lent
        self.spill_reserved = 0
        self.spill_in_use = 0
        self.parts = 0
        # Memory parts still being filled: the ones that may move to disk.
        self.filling: set[Part] = set()
        self._free: list[bytearray] = []
        # Who waits for a part, in order: running uploads first, then new ones.
        self._running: deque[asyncio.Future[Part]] = deque()
        self._new: deque[asyncio.Future[Part]] = deque()
        self.dir = _own_directory(Path(spill_root))
        self._lock = os.open(self.dir / LOCK_NAME, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(self._lock, fcntl.LOCK_EX)

    @property
    def waiting(self) -> int:  # running uploads waiting for their next part
        return len(self._running)

    @property
    def admitting(self) -> int:  # new uploads waiting for their first part
        return len(self._new)

    def close(self) -> None:
        """Remove this process's spill directory (parts still open are lost with it)."""
        os.close(self._lock)
        shutil.rmtree(self.dir, ignore_errors=True)

    async def admit(self) -> Part:
        """The first part of a new upload, in turn, within `admission_wait` seconds (then busy)."""
        started = time.monotonic()
        try:
            if not (self._running or self._new) and (part := self._try_take()) is not None:
                return part
            try:
                async with asyncio.timeout(self.admission_wait):
                    return await self._wait(self._new)
            except TimeoutError:
                metrics.ADMISSIONS_REFUSED.inc()
                raise capacity.busy() from None
        finally:
            metrics.ADMISSION_WAIT.observe(time.monotonic() - started)

    async def take(self) -> Part:
        """A part for a running upload, ahead of new ones: finishing frees room soonest."""
        if not self._running and (part := self._try_take()) is not None:
            return part
        return await self._wait(self._running)

    async def _wait(self, queue: deque[asyncio.Future[Part]]) -> Part:
        turn: asyncio.Future[Part] = asyncio.get_running_loop().create_future()
        queue.append(turn)
        try:
            return await turn
        except BaseException:
            if turn.done() and not turn.cancelled():
                turn.result().close()  # handed a part while leaving: it goes to the next
            else:
                turn.cancel()
                with contextlib.suppress(ValueError):
                    queue.remove(turn)
            raise

    def spilled(self, n: int) -> None:
        self.spill_in_use += n
        metrics.SPILLED_BYTES.inc(n)

    def give_back(self, part: Part) -> None:
        self.parts -= 1
        self.filling.discard(part)
        if part.in_memory:
            assert part._buffer is not None
            self._free.append(part._buffer)
            part._buffer = None
            self.in_use -= 1
        else:
            self.spill_reserved -= self.part_bytes
            self.spill_in_use -= part.size
        self._hand_out()

    def _try_take(self) -> Part | None:
        buffer = self._lend_buffer()
        if buffer is None and self._disk_room():
            idle = self._idlest()
            if idle is not None:
                self.spill_reserved += self.part_bytes
                buffer = idle.to_disk()
        if buffer is not None:
            part = Part(self, buffer)
            self.filling.add(part)
        elif self._disk_room():
            self.spill_reserved += self.part_bytes
            part = Part(self, None)
        else:
            return None
        self.parts += 1
        return part

    def _lend_buffer(self) -> bytearray | None:
        if self.in_use >= self.memory_parts:
            return None
        self.in_use += 1
        # Created on first use and then kept, so the allocator never fragments.
        return self._free.pop() if self._free else bytearray(self.part_bytes)

    def _disk_room(self) -> bool:
        return self.spill_reserved + self.part_bytes <= self.spill_bytes

    def _idlest(self) -> Part | None:
        quiet_since = time.monotonic() - self.reclaim_after
        candidates = [p for p in self.filling if p.last_write <= quiet_since]
        return min(candidates, key=lambda p: p.last_write, default=None)

    def _hand_out(self) -> None:
        while True:
            for queue in (self._running, self._new):
                while queue and queue[0].done():
                    queue.popleft()  # left already
            queue = self._running or self._new
            if not queue or (part := self._try_take()) is None:
                return
            queue.popleft().set_result(part)


def _own_directory(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for other in root.glob(DIR_PREFIX + "*"):
        try:
            fd = os.open(other / LOCK_NAME, os.O_RDWR)
        except FileNotFoundError:
            continue  # being created right now
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # a live process
        finally:
            os.close(fd)
        shutil.rmtree(other, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=DIR_PREFIX, dir=root))
