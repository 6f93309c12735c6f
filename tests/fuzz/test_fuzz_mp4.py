"""Property-based fuzz of the streaming MP4 scanner (risingstars.upload.mp4).

Files are random box trees within a budget (at most MAX_BOXES boxes, MAX_DEPTH levels), with a
real moov (mvhd, trak/tkhd/mdia/hdlr/mdhd/minf/stbl/stsd) or a damaged one, unknown boxes,
64-bit sizes and to-the-end boxes, then optionally mutated (bytes flipped, cut short). Each is fed
in a random chunking. Whatever the bytes: only Mp4Error comes out, the result does not depend on
the chunking, a moov larger than the cap is never kept, a well-formed file gives exactly the
duration and picture size it was built with, and the ranged-read probe agrees.

FUZZ_EXAMPLES (default 150) sets the number of examples; see docs/reliability.md."""

from __future__ import annotations

import asyncio
import os
import struct

from fuzz.chunking import chunkings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from risingstars.upload import mp4

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))
MAX_BOXES = 40
MAX_DEPTH = 6
MOOV_CAP = 4096
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def box(kind: bytes, payload: bytes, style: str = "plain") -> bytes:
    if style == "large":
        return struct.pack(">I4sQ", 1, kind, 16 + len(payload)) + payload
    if style == "to_end":
        return struct.pack(">I4s", 0, kind) + payload
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def full(kind: bytes, version: int, payload: bytes) -> bytes:
    return box(kind, bytes([version, 0, 0, 0]) + payload)


def mvhd(timescale: int, duration: int, version: int) -> bytes:
    if version == 1:
        return full(b"mvhd", 1, struct.pack(">QQIQ", 0, 0, timescale, duration) + bytes(80))
    return full(b"mvhd", 0, struct.pack(">IIII", 0, 0, timescale, duration) + bytes(80))


def tkhd(width: int, height: int, version: int) -> bytes:
    head = bytes(32) if version == 1 else bytes(20)
    body = head + bytes(8 + 8 + 36) + struct.pack(">II", width << 16, height << 16)
    return full(b"tkhd", version, body)


def video_trak(width: int, height: int, version: int, extras: list[bytes]) -> bytes:
    entry = box(b"avc1", bytes(24) + struct.pack(">HH", width, height) + bytes(50))
    stsd = full(b"stsd", 0, struct.pack(">I", 1) + entry)
    minf = box(b"minf", box(b"stbl", stsd) + b"".join(extras))
    mdia = box(
        b"mdia",
        full(b"hdlr", 0, bytes(4) + b"vide" + bytes(13))
        + full(b"mdhd", 0, struct.pack(">IIII", 0, 0, 1000, 1000))
        + minf,
    )
    return box(b"trak", tkhd(width, height, version) + mdia)


# Boxes the scanner must skip; the hostile ones (a second moov, a bogus trak...) make the file
# ill-formed, so no particular result is expected from them, only a clean one.
SAFE_KINDS = [b"free", b"skip", b"udta", b"meta", b"uuid", b"zzzz"]
HOSTILE_KINDS = [*SAFE_KINDS, b"trak", b"mdia", b"moov", b"ftyp", b"mvhd", b"stsd"]


@st.composite
def junk_tree(draw, depth: int, budget: list[int], kinds: list[bytes]) -> bytes:
    """Unknown (or misplaced) boxes nested at most `depth` deep, counting against `budget`."""
    if budget[0] <= 0:
        return b""
    budget[0] -= 1
    kind = draw(st.sampled_from(kinds))
    if depth > 1 and draw(st.booleans()):
        children = draw(st.lists(junk_tree(depth - 1, budget, kinds), max_size=3))
        return box(kind, b"".join(children))
    return box(kind, draw(st.binary(max_size=24)))


@st.composite
def mp4_files(draw):
    """(bytes, expected info or None). Expected is set only when the file is well formed."""
    budget = [MAX_BOXES - 12]  # the fixed boxes of a well-formed file
    width = draw(st.integers(16, 4096))
    height = draw(st.integers(16, 4096))
    timescale = draw(st.integers(1, 100_000))
    duration = draw(st.integers(1, 10**9))
    version = draw(st.integers(0, 1))
    hostile = draw(st.booleans())
    kinds = HOSTILE_KINDS if hostile else SAFE_KINDS
    extras = draw(st.lists(junk_tree(MAX_DEPTH - 4, budget, kinds), max_size=2))
    moov_children = [
        mvhd(timescale, duration, version),
        video_trak(width, height, version, extras),
        *draw(st.lists(junk_tree(MAX_DEPTH - 1, budget, kinds), max_size=3)),
    ]
    order = draw(st.permutations(range(len(moov_children))))
    moov = box(b"moov", b"".join(moov_children[i] for i in order))
    ftyp = box(b"ftyp", b"isom" + bytes(4) + b"isomavc1")
    mdat_style = draw(st.sampled_from(["plain", "large", "to_end"]))
    top = [draw(junk_tree(2, budget, kinds)) for _ in range(draw(st.integers(0, 2)))]
    mdat = draw(st.binary(max_size=256))
    if draw(st.booleans()):  # faststart: moov before mdat
        data = ftyp + moov + b"".join(top) + box(b"mdat", mdat, mdat_style)
    else:
        tail_style = "plain" if mdat_style == "to_end" else mdat_style
        data = ftyp + b"".join(top) + box(b"mdat", mdat, tail_style) + moov
    ok = len(moov) - 8 <= MOOV_CAP and not hostile
    expected = mp4.Mp4Info(duration / timescale, width, height) if ok else None
    # Damage: flip bytes or cut the file short.
    if draw(st.booleans()):
        data = bytearray(data)
        for _ in range(draw(st.integers(1, 4))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        data = bytes(data)
        expected = None
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
        expected = None
    return data, expected


def scan(chunks: list[bytes], max_file: int | None = None) -> mp4.Mp4Info | str:
    scanner = mp4.Mp4Scanner(max_moov_bytes=MOOV_CAP, max_file_bytes=max_file)
    try:
        for chunk in chunks:
            scanner.feed(chunk)
            kept = scanner._moov
            assert kept is None or len(kept) <= MOOV_CAP, "kept more moov than the cap"
        return scanner.finish()
    except mp4.Mp4Error as exc:
        return exc.code


def probe(data: bytes) -> mp4.Mp4Info | str:
    async def read(offset: int, length: int) -> bytes:
        return data[offset : offset + length]

    try:
        return asyncio.run(mp4.probe(read, len(data), max_moov_bytes=MOOV_CAP))
    except mp4.Mp4Error as exc:
        return exc.code


@FUZZ
@given(st.data())
def test_scanner_result_is_independent_of_chunking(data) -> None:
    content, expected = data.draw(mp4_files())
    whole = scan([content])
    pieces = scan(data.draw(chunkings(content)))
    assert pieces == whole
    if expected is not None:
        assert isinstance(whole, mp4.Mp4Info), whole
        assert whole.width == expected.width and whole.height == expected.height
        assert abs(whole.duration_seconds - expected.duration_seconds) < 1e-9


@FUZZ
@given(st.data())
def test_probe_agrees_with_the_scanner(data) -> None:
    content, _ = data.draw(mp4_files())
    scanned = scan([content])
    if isinstance(scanned, mp4.Mp4Info):
        assert probe(content) == scanned


@FUZZ
@given(st.binary(max_size=2048), st.data())
def test_arbitrary_bytes_only_raise_mp4_errors(content: bytes, data) -> None:
    content = box(b"ftyp", b"isom") + content if data.draw(st.booleans()) else content
    chunks = data.draw(chunkings(content))
    assert scan(chunks) == scan([content])
    probe(content)


@FUZZ
@given(st.data())
def test_size_limit_holds_in_every_chunking(data) -> None:
    content, _ = data.draw(mp4_files())
    limit = data.draw(st.integers(8, max(8, len(content))))
    result = scan(data.draw(chunkings(content)), max_file=limit)
    if isinstance(result, mp4.Mp4Info):
        # Accepted: every box that declared its size ended within the limit.
        assert result == scan([content], max_file=limit)
