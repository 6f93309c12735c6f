"""Just enough of MP4 to validate an upload: the top-level boxes, and duration and picture size
from `moov`. `Mp4Scanner` is fed the file as it streams past (keeping only `moov`); `probe`
walks a stored object with ranged reads."""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Awaitable, Callable, Iterator

NOT_MP4 = "not_mp4"
TRUNCATED = "truncated"
INVALID = "invalid"
MOOV_TOO_LARGE = "moov_too_large"
TOO_LARGE = "too_large"

# An ftyp box holds a few brands; anything bigger is not one.
_MAX_FTYP_BYTES = 4096
# Top-level boxes a file may have (finding 10.1): a plain MP4 has a handful, a fragmented one
# two per fragment; millions of tiny boxes would cost a walk each.
MAX_TOP_LEVEL_BOXES = 10_000
# The probe reads box headers through windows this large: a faststart file is one read, a
# moov-at-the-end file two (a short clip's moov is a few dozen KB).
PROBE_WINDOW_BYTES = 64 * 1024
TOO_MANY_BOXES = "too_many_boxes"
_HEADER = struct.Struct(">I4s")


class Mp4Error(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclasses.dataclass(frozen=True)
class Mp4Info:
    duration_seconds: float
    width: int
    height: int

    @property
    def short_side(self) -> int:
        return min(self.width, self.height)


@dataclasses.dataclass(frozen=True)
class BoxHeader:
    kind: bytes
    header_size: int
    # None: the box runs to the end of the file (size field 0).
    size: int | None


def parse_header(data: bytes | memoryview) -> BoxHeader | None:
    """The header at the start of `data`, or None if more bytes are needed."""
    if len(data) < 8:
        return None
    size, kind = _HEADER.unpack_from(data)
    if size == 1:
        if len(data) < 16:
            return None
        (size,) = struct.unpack_from(">Q", data, 8)
        header_size = 16
    else:
        header_size = 8
    if size == 0:
        return BoxHeader(bytes(kind), header_size, None)
    if size < header_size:
        raise Mp4Error(INVALID, f"box {bytes(kind)!r} declares an impossible size {size}")
    return BoxHeader(bytes(kind), header_size, size)


def _check_first(header: BoxHeader) -> None:
    if header.kind != b"ftyp" or header.size is None or header.size > _MAX_FTYP_BYTES:
        raise Mp4Error(NOT_MP4, "the file does not start with an ftyp box")


def _children(data: memoryview) -> Iterator[tuple[bytes, memoryview]]:
    offset = 0
    while offset + 8 <= len(data):
        header = parse_header(data[offset:])
        if header is None:
            raise Mp4Error(INVALID, "truncated box header inside moov")
        end = len(data) if header.size is None else offset + header.size
        if end > len(data):
            raise Mp4Error(INVALID, f"box {header.kind!r} overruns its parent")
        yield header.kind, data[offset + header.header_size : end]
        offset = end


def _full_box(payload: memoryview) -> tuple[int, memoryview]:
    if len(payload) < 4:
        raise Mp4Error(INVALID, "full box too short")
    return payload[0], payload[4:]


def _mvhd(payload: memoryview) -> tuple[int, int]:
    version, body = _full_box(payload)
    try:
        if version == 1:
            timescale, duration = struct.unpack_from(">IQ", body, 16)
        else:
            timescale, duration = struct.unpack_from(">II", body, 8)
    except struct.error:
        raise Mp4Error(INVALID, "mvhd too short") from None
    unknown = 0xFFFFFFFFFFFFFFFF if version == 1 else 0xFFFFFFFF
    return timescale, 0 if duration == unknown else duration


def _tkhd_size(payload: memoryview) -> tuple[int, int]:
    version, body = _full_box(payload)
    # creation, modification, track id, reserved, duration; then reserved(8), layer,
    # alternate group, volume, reserved, matrix(36): width and height are 16.16 fixed point.
    offset = (32 if version == 1 else 20) + 8 + 8 + 36
    try:
        width, height = struct.unpack_from(">II", body, offset)
    except struct.error:
        raise Mp4Error(INVALID, "tkhd too short") from None
    return width >> 16, height >> 16


def _hdlr(payload: memoryview) -> bytes:
    _, body = _full_box(payload)
    if len(body) < 8:
        raise Mp4Error(INVALID, "hdlr too short")
    return bytes(body[4:8])


def _stsd_size(payload: memoryview) -> tuple[int, int]:
    _, body = _full_box(payload)
    if len(body) < 4:
        return 0, 0
    for _, entry in _children(body[4:]):
        # Visual sample entry: reserved(6), data reference index(2), pre-defined and
        # reserved(16), then width and height as 16-bit integers.
        if len(entry) >= 28:
            return struct.unpack_from(">HH", entry, 24)
    return 0, 0


@dataclasses.dataclass
class _Track:
    handler: bytes = b""
    width: int = 0
    height: int = 0
    sample_width: int = 0
    sample_height: int = 0
    timescale: int = 0
    duration: int = 0


def _track(trak: memoryview) -> _Track:
    track = _Track()
    for kind, payload in _children(trak):
        if kind == b"tkhd":
            track.width, track.height = _tkhd_size(payload)
        elif kind == b"mdia":
            for mkind, mpayload in _children(payload):
                if mkind == b"hdlr":
                    track.handler = _hdlr(mpayload)
                elif mkind == b"mdhd":
                    # Same layout as mvhd up to the duration.
                    track.timescale, track.duration = _mvhd(mpayload)
                elif mkind == b"minf":
                    for ikind, ipayload in _children(mpayload):
                        if ikind != b"stbl":
                            continue
                        for skind, spayload in _children(ipayload):
                            if skind == b"stsd":
                                track.sample_width, track.sample_height = _stsd_size(spayload)
    return track


def parse_moov(payload: bytes | bytearray | memoryview) -> Mp4Info:
    data = memoryview(payload)
    timescale = duration = 0
    fragment_duration = 0
    tracks: list[_Track] = []
    for kind, child in _children(data):
        if kind == b"mvhd":
            timescale, duration = _mvhd(child)
        elif kind == b"trak":
            tracks.append(_track(child))
        elif kind == b"mvex":
            for xkind, xpayload in _children(child):
                if xkind == b"mehd":
                    version, body = _full_box(xpayload)
                    fmt = ">Q" if version == 1 else ">I"
                    if len(body) >= struct.calcsize(fmt):
                        (fragment_duration,) = struct.unpack_from(fmt, body)
    if timescale <= 0:
        raise Mp4Error(INVALID, "moov has no usable mvhd")
    video = [t for t in tracks if t.handler == b"vide"]
    if not video:
        raise Mp4Error(INVALID, "no video track")
    seconds = duration / timescale
    if seconds <= 0 and fragment_duration:
        # Fragmented files announce their length in mvex/mehd instead.
        seconds = fragment_duration / timescale
    if seconds <= 0:
        seconds = max((t.duration / t.timescale for t in video if t.timescale > 0), default=0)
    if seconds <= 0:
        raise Mp4Error(INVALID, "duration unknown")
    width, height = max(
        ((t.width, t.height) if t.width and t.height else (t.sample_width, t.sample_height))
        for t in video
    )
    if not width or not height:
        raise Mp4Error(INVALID, "picture size unknown")
    return Mp4Info(duration_seconds=seconds, width=width, height=height)


class Mp4Scanner:
    """`feed` returns the Mp4Info once moov has gone by; `finish` checks the file's end."""

    def __init__(self, *, max_moov_bytes: int, max_file_bytes: int | None = None) -> None:
        self.max_moov = max_moov_bytes
        self.max_file = max_file_bytes
        self.offset = 0
        self.boxes = 0
        self.info: Mp4Info | None = None
        self._header = bytearray()
        self._remaining: int | None = None  # None: reading a header; -1: runs to the end
        self._moov: bytearray | None = None
        self._reported = False

    def feed(self, data: bytes | memoryview) -> Mp4Info | None:
        view = memoryview(data)
        i = 0
        end = len(view)
        while i < end:
            if self._remaining is None:
                i = self._read_header(view, i)
                continue
            take = end - i if self._remaining < 0 else min(self._remaining, end - i)
            if self._moov is not None:
                if len(self._moov) + take > self.max_moov:
                    raise Mp4Error(MOOV_TOO_LARGE, "moov box larger than allowed")
                self._moov += view[i : i + take]
            i += take
            if self._remaining > 0:
                self._remaining -= take
                if self._remaining == 0:
                    self._end_box()
        self.offset += end
        if self.info is not None and not self._reported:
            self._reported = True
            return self.info
        return None

    def _read_header(self, view: memoryview, i: int) -> int:
        need = 16 if len(self._header) >= 8 and self._header[:4] == b"\0\0\0\1" else 8
        take = min(need - len(self._header), len(view) - i)
        self._header += view[i : i + take]
        i += take
        header = parse_header(self._header)
        if header is None:
            if self.boxes == 0 and len(self._header) >= 8:
                _check_first(BoxHeader(bytes(self._header[4:8]), 16, 0))
            return i
        if self.boxes == 0:
            _check_first(header)
        start = self.offset + i - len(self._header)
        if (
            self.max_file is not None
            and header.size is not None
            and start + header.size > self.max_file
        ):
            raise Mp4Error(TOO_LARGE, "a box ends beyond the size limit")
        self.boxes += 1
        if self.boxes > MAX_TOP_LEVEL_BOXES:
            raise Mp4Error(TOO_MANY_BOXES, "too many top-level boxes")
        self._header.clear()
        if header.kind == b"moov":
            if self.info is not None or self._moov is not None:
                raise Mp4Error(INVALID, "more than one moov box")
            if header.size is not None and header.size - header.header_size > self.max_moov:
                raise Mp4Error(MOOV_TOO_LARGE, "moov box larger than allowed")
            self._moov = bytearray()
        if header.size is None:
            self._remaining = -1
        else:
            self._remaining = header.size - header.header_size
            if self._remaining == 0:
                self._end_box()
        return i

    def _end_box(self) -> None:
        self._remaining = None
        if self._moov is not None:
            moov, self._moov = self._moov, None
            self.info = parse_moov(moov)

    def finish(self) -> Mp4Info:
        if self.boxes == 0:
            raise Mp4Error(NOT_MP4, "empty file")
        if (self._remaining is not None and self._remaining >= 0) or self._header:
            raise Mp4Error(TRUNCATED, "the file ends inside a box")
        if self._remaining == -1:
            self._end_box()
        if self.info is None:
            raise Mp4Error(TRUNCATED, "no moov box")
        return self.info


ReadRange = Callable[[int, int], Awaitable[bytes]]


async def probe(read: ReadRange, size: int, *, max_moov_bytes: int) -> Mp4Info:
    """Validate a stored file through ranged reads: windows of box headers, then moov."""
    offset = 0
    boxes = 0
    window, window_start = b"", 0
    while offset < size:
        rel = offset - window_start
        if rel < 0 or (rel + 16 > len(window) and window_start + len(window) < size):
            window_start = offset
            window = await read(offset, min(PROBE_WINDOW_BYTES, size - offset))
            rel = 0
        header = parse_header(window[rel : rel + 16])
        if header is None:
            raise Mp4Error(NOT_MP4 if boxes == 0 else TRUNCATED, "the file ends inside a header")
        if boxes == 0:
            _check_first(header)
        boxes += 1
        if boxes > MAX_TOP_LEVEL_BOXES:
            raise Mp4Error(TOO_MANY_BOXES, "too many top-level boxes")
        box_size = size - offset if header.size is None else header.size
        if offset + box_size > size:
            raise Mp4Error(TRUNCATED, "the file ends inside a box")
        if header.kind == b"moov":
            length = box_size - header.header_size
            if length > max_moov_bytes:
                raise Mp4Error(MOOV_TOO_LARGE, "moov box larger than allowed")
            start = rel + header.header_size
            if start + length <= len(window):
                payload = window[start : start + length]
            else:
                payload = await read(offset + header.header_size, length)
            if len(payload) != length:
                raise Mp4Error(TRUNCATED, "short read of moov")
            return parse_moov(payload)
        offset += box_size
    if boxes == 0:
        raise Mp4Error(NOT_MP4, "empty file")
    raise Mp4Error(TRUNCATED, "no moov box")
