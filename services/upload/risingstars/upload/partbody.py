"""A part's bytes as botocore and aiohttp want them: held in memory or in a spill file."""

from __future__ import annotations

import base64
import io
import os
from collections.abc import AsyncIterator


class PartBody:
    """botocore sees a seekable file (it rewinds it to retry), aiohttp an async iterable of
    slices. Not an io.IOBase on purpose: aiohttp would read it in a thread, 64 KiB at a time."""

    SLICE = 64 * 1024

    def __init__(self, view: memoryview, crc32: int | None = None) -> None:
        self._view = view
        self._size = len(view)
        self._pos = 0
        self._crc32 = crc32

    @property
    def checksum(self) -> dict[str, str]:
        """Computed as the bytes arrived: else botocore reads the part again (9 % of the CPU)."""
        if self._crc32 is None:
            return {}
        # The same two headers botocore sends when it computes the checksum itself.
        return {
            "ChecksumAlgorithm": "CRC32",
            "ChecksumCRC32": base64.b64encode(self._crc32.to_bytes(4, "big")).decode(),
        }

    def _read_at(self, offset: int, size: int) -> bytes | memoryview:
        return self._view[offset : offset + size]

    def read(self, size: int = -1) -> bytes:
        end = self._size if size is None or size < 0 else min(self._size, self._pos + size)
        chunk = bytes(self._read_at(self._pos, max(0, end - self._pos)))
        self._pos += len(chunk)
        return chunk

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def __len__(self) -> int:
        return self._size

    async def __aiter__(self) -> AsyncIterator[bytes | memoryview]:
        # Always the whole part: a retried request iterates afresh.
        for start in range(0, self._size, self.SLICE):
            yield self._read_at(start, min(self.SLICE, self._size - start))


class FileBody(PartBody):
    """A part spilled to a file, read slice by slice (local scratch disk, mostly page cache)."""

    def __init__(self, fd: int, size: int, crc32: int | None = None) -> None:
        super().__init__(memoryview(b""), crc32)
        self._fd, self._size = fd, size

    def _read_at(self, offset: int, size: int) -> bytes:
        return os.pread(self._fd, size, offset)
