"""The MP4 box parser: streaming scanner and ranged-read probe, on synthetic boxes and on real
ffmpeg output (cross-checked with PyAV)."""

from __future__ import annotations

import contextlib
import struct

import av
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from risingstars.upload import mp4

MOOV_CAP = 1 << 20


def box(kind: bytes, payload: bytes = b"", *, large: bool = False) -> bytes:
    if large:
        return struct.pack(">I4sQ", 1, kind, 16 + len(payload)) + payload
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def full(kind: bytes, version: int, payload: bytes) -> bytes:
    return box(kind, bytes([version, 0, 0, 0]) + payload)


def mvhd(timescale: int, duration: int, version: int = 0) -> bytes:
    if version == 1:
        body = struct.pack(">QQIQ", 0, 0, timescale, duration)
    else:
        body = struct.pack(">IIII", 0, 0, timescale, duration)
    return full(b"mvhd", version, body + bytes(80))


def tkhd(width: int, height: int, version: int = 0) -> bytes:
    head = (
        struct.pack(">QQIIQ", 0, 0, 1, 0, 0)
        if version == 1
        else struct.pack(">IIIII", 0, 0, 1, 0, 0)
    )
    tail = bytes(8) + struct.pack(">hhhH", 0, 0, 0, 0) + bytes(36)
    return full(b"tkhd", version, head + tail + struct.pack(">II", width << 16, height << 16))


def hdlr(handler: bytes) -> bytes:
    return full(b"hdlr", 0, bytes(4) + handler + bytes(12) + b"\0")


def trak(width: int, height: int, handler: bytes = b"vide", version: int = 0) -> bytes:
    return box(b"trak", tkhd(width, height, version) + box(b"mdia", hdlr(handler)))


def moov(seconds: float = 30, width: int = 1920, height: int = 1080, **kw) -> bytes:
    return box(b"moov", mvhd(1000, int(seconds * 1000)) + trak(width, height, **kw))


FTYP = box(b"ftyp", b"isom" + bytes(4) + b"isomavc1")


def file_with(moov_box: bytes, mdat: int = 5000, moov_first: bool = False) -> bytes:
    data = box(b"mdat", bytes(mdat))
    return FTYP + (moov_box + data if moov_first else data + moov_box)


def scan(data: bytes, chunk: int = 4096, **kw) -> mp4.Mp4Info:
    scanner = mp4.Mp4Scanner(max_moov_bytes=kw.pop("max_moov", MOOV_CAP), **kw)
    for i in range(0, len(data), chunk):
        scanner.feed(data[i : i + chunk])
    return scanner.finish()


def test_moov_at_the_end_or_at_the_front_gives_the_same_answer() -> None:
    for first in (False, True):
        info = scan(file_with(moov(42.5), moov_first=first))
        assert info == mp4.Mp4Info(duration_seconds=42.5, width=1920, height=1080)


def test_feed_reports_the_info_as_soon_as_moov_has_passed() -> None:
    data = file_with(moov(30), mdat=100_000, moov_first=True)
    scanner = mp4.Mp4Scanner(max_moov_bytes=MOOV_CAP)
    head = len(FTYP) + len(moov(30))
    assert scanner.feed(data[: head - 1]) is None
    assert scanner.feed(data[head - 1 : head + 10]) == mp4.Mp4Info(30, 1920, 1080)
    assert scanner.feed(data[head + 10 :]) is None  # reported once
    assert scanner.finish().duration_seconds == 30


def test_version_1_boxes_and_64_bit_sizes() -> None:
    moov_v1 = box(b"moov", mvhd(90000, 90000 * 25, version=1) + trak(1080, 1920, version=1))
    data = FTYP + box(b"mdat", bytes(3000), large=True) + moov_v1
    assert scan(data, chunk=7) == mp4.Mp4Info(25, 1080, 1920)


def test_fragmented_file_takes_its_duration_from_mehd() -> None:
    mehd = full(b"mehd", 0, struct.pack(">I", 21_000))
    fragmented = box(b"moov", mvhd(1000, 0) + trak(1920, 1080) + box(b"mvex", mehd))
    assert scan(FTYP + fragmented + box(b"moof") + box(b"mdat", bytes(10))).duration_seconds == 21


def test_the_largest_video_track_decides_and_audio_tracks_are_ignored() -> None:
    two = box(b"moov", mvhd(1000, 30_000) + trak(0, 0, b"soun") + trak(640, 360) + trak(1920, 1080))
    assert scan(FTYP + two).short_side == 1080


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", mp4.NOT_MP4),
        (b"%PDF-1.4\n" + bytes(100), mp4.NOT_MP4),
        (box(b"mdat", bytes(10)) + FTYP, mp4.NOT_MP4),
        (box(b"ftyp", bytes(5000)), mp4.NOT_MP4),  # no ftyp is that big
        (FTYP[:5], mp4.NOT_MP4),
        (FTYP + box(b"mdat", bytes(100)), mp4.TRUNCATED),  # no moov
        (file_with(moov(30))[:-1], mp4.TRUNCATED),
        (file_with(moov(30), moov_first=True)[:-10], mp4.TRUNCATED),
        (FTYP + struct.pack(">I4s", 4, b"free"), mp4.INVALID),  # size below its header
        (FTYP + moov(30) + moov(30), mp4.INVALID),
        (FTYP + box(b"moov", mvhd(1000, 30_000) + trak(1920, 1080, b"soun")), mp4.INVALID),
        (FTYP + box(b"moov", mvhd(1000, 0) + trak(1920, 1080)), mp4.INVALID),
        (FTYP + box(b"moov", mvhd(0, 10) + trak(1920, 1080)), mp4.INVALID),
        (FTYP + box(b"moov", mvhd(1000, 30_000) + trak(0, 0)), mp4.INVALID),
        (FTYP + box(b"moov", box(b"trak", struct.pack(">I4s", 999, b"tkhd"))), mp4.INVALID),
    ],
)
def test_refusals(data: bytes, code: str) -> None:
    with pytest.raises(mp4.Mp4Error) as caught:
        scan(data, chunk=3)
    assert caught.value.code == code


def test_the_moov_cap_holds_for_declared_and_open_ended_boxes() -> None:
    big = moov(30) + bytes(0)
    with pytest.raises(mp4.Mp4Error) as caught:
        scan(FTYP + big, max_moov=len(big) - 9)
    assert caught.value.code == mp4.MOOV_TOO_LARGE
    open_ended = FTYP + struct.pack(">I4s", 0, b"moov") + bytes(5000)
    with pytest.raises(mp4.Mp4Error) as caught:
        scan(open_ended, max_moov=4000)
    assert caught.value.code == mp4.MOOV_TOO_LARGE


def test_a_box_announcing_more_than_the_size_limit_is_refused_before_its_data() -> None:
    scanner = mp4.Mp4Scanner(max_moov_bytes=MOOV_CAP, max_file_bytes=10_000)
    with pytest.raises(mp4.Mp4Error) as caught:
        scanner.feed(FTYP + struct.pack(">I4s", 50_000, b"mdat"))
    assert caught.value.code == mp4.TOO_LARGE


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=6000), max_size=30), first=st.booleans())
def test_any_chunking_gives_the_same_result(cuts: list[int], first: bool) -> None:
    data = file_with(moov(33.3, 1080, 1920), mdat=4000, moov_first=first)
    scanner = mp4.Mp4Scanner(max_moov_bytes=MOOV_CAP)
    start = 0
    for cut in sorted(c for c in cuts if c < len(data)):
        scanner.feed(data[start:cut])
        start = cut
    scanner.feed(data[start:])
    assert scanner.finish() == mp4.Mp4Info(33.3, 1080, 1920)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400), st.booleans())
def test_garbage_only_ever_raises_mp4_errors(tail: bytes, with_ftyp: bool) -> None:
    data = (FTYP if with_ftyp else b"") + tail
    with contextlib.suppress(mp4.Mp4Error):
        scan(data, chunk=5)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_garbage_inside_moov_only_ever_raises_mp4_errors(payload: bytes) -> None:
    with pytest.raises(mp4.Mp4Error):
        mp4.parse_moov(payload + b"\0")  # never a valid moov: no mvhd with a timescale


def _reader(data: bytes, calls: list[tuple[int, int]]):
    async def read(offset: int, length: int) -> bytes:
        calls.append((offset, length))
        return data[offset : offset + length]

    return read


async def test_probe_walks_a_stored_file_with_a_few_ranged_reads() -> None:
    # Every read is a request to S3 on the completion path: a faststart file takes one, a file
    # with moov at the end two (its header window holds moov), a moov too big for a window one
    # more.
    padded_moov = box(b"moov", mvhd(1000, 25_000) + trak(1920, 1080) + box(b"free", bytes(70_000)))
    for moov_box, first, reads in [
        (moov(25), True, 1),
        (moov(25), False, 2),
        (padded_moov, True, 2),
        (padded_moov, False, 3),
    ]:
        data = file_with(moov_box, mdat=1_000_000, moov_first=first)
        calls: list[tuple[int, int]] = []
        info = await mp4.probe(_reader(data, calls), len(data), max_moov_bytes=MOOV_CAP)
        assert info == mp4.Mp4Info(25, 1920, 1080)
        assert len(calls) == reads, (len(moov_box), first, calls)
        # Header windows and moov: never the media data.
        assert sum(length for _, length in calls) < 2 * mp4.PROBE_WINDOW_BYTES + len(moov_box)


def _many_boxes(count: int) -> bytes:
    return FTYP + box(b"free") * count + moov(25)


async def test_top_level_boxes_are_capped_in_probe_and_scanner() -> None:
    data = _many_boxes(50_000)
    calls: list[tuple[int, int]] = []
    with pytest.raises(mp4.Mp4Error) as caught:
        await mp4.probe(_reader(data, calls), len(data), max_moov_bytes=MOOV_CAP)
    assert caught.value.code == mp4.TOO_MANY_BOXES
    # Walking 10,000 eight-byte boxes takes a few windows, not a request per box.
    assert len(calls) <= mp4.MAX_TOP_LEVEL_BOXES * 8 // mp4.PROBE_WINDOW_BYTES + 2
    with pytest.raises(mp4.Mp4Error) as scanned:
        scan(data, chunk=65536)
    assert scanned.value.code == mp4.TOO_MANY_BOXES
    # Right at the cap (ftyp and moov count too), a file still passes.
    fits = _many_boxes(mp4.MAX_TOP_LEVEL_BOXES - 2)
    assert (await mp4.probe(_reader(fits, []), len(fits), max_moov_bytes=MOOV_CAP)).width == 1920
    assert scan(fits, chunk=65536).width == 1920


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"%PDF-1.4" + bytes(50), mp4.NOT_MP4),
        (FTYP + box(b"mdat", bytes(100)), mp4.TRUNCATED),
        (file_with(moov(30))[:-3], mp4.TRUNCATED),
        (b"", mp4.NOT_MP4),
    ],
)
async def test_probe_refusals(data: bytes, code: str) -> None:
    with pytest.raises(mp4.Mp4Error) as caught:
        await mp4.probe(_reader(data, []), len(data), max_moov_bytes=MOOV_CAP)
    assert caught.value.code == code


@pytest.mark.parametrize("name", ["ok", "ok_faststart", "vertical", "hd_720p", "long_90s"])
async def test_real_files_agree_with_pyav(clips, name: str) -> None:
    path = clips[name]
    data = path.read_bytes()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        expected_size = (stream.codec_context.width, stream.codec_context.height)
        expected_seconds = float(container.duration) / av.time_base
    for info in (
        scan(data, chunk=65536),
        await mp4.probe(_reader(data, []), len(data), max_moov_bytes=MOOV_CAP),
    ):
        assert (info.width, info.height) == expected_size
        assert info.duration_seconds == pytest.approx(expected_seconds, abs=0.3)
