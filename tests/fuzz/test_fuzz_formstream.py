"""Property-based fuzz of the streaming multipart/form-data reader (risingstars.upload.formstream).

Forms of a few parts (at most MAX_PARTS, with names, optional filenames and contents that hold
pieces of the boundary, CRLFs and dashes) are encoded and fed in random chunkings: the events
give back exactly the parts that went in, whatever the chunking. Damaged bodies and arbitrary
bytes only ever raise FormError, with the same outcome in every chunking, and header bytes stay
within their budget."""

from __future__ import annotations

import os

import pytest
from fuzz.chunking import chunkings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from risingstars.upload import formstream

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))
MAX_PARTS = 5
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
BOUNDARY = b"----rsfuzzBOUNDARY7f3a"

NAMES = st.text(
    st.characters(codec="utf-8", exclude_characters='"\\\r\n\x00'), min_size=1, max_size=12
)
# Content made of the pieces that confuse a boundary search.
PIECES = st.sampled_from(
    [b"\r\n", b"--", BOUNDARY[:7], BOUNDARY, b"\r\n--" + BOUNDARY[:-1], b"\r", b"-", b"x", b"\x00"]
)
CONTENT = st.lists(st.one_of(PIECES, st.binary(max_size=40)), max_size=12).map(b"".join)


@st.composite
def forms(draw) -> list[tuple[str, str | None, bytes]]:
    count = draw(st.integers(1, MAX_PARTS))
    return [(draw(NAMES), draw(st.one_of(st.none(), NAMES)), draw(CONTENT)) for _ in range(count)]


def encode(parts: list[tuple[str, str | None, bytes]], boundary: bytes = BOUNDARY) -> bytes:
    out = []
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out.append(b"--" + boundary + b"\r\n")
        out.append(f"Content-Disposition: {disposition}\r\n".encode())
        if filename is not None:
            out.append(b"Content-Type: video/mp4\r\n")
        out.append(b"\r\n" + content + b"\r\n")
    out.append(b"--" + boundary + b"--\r\n")
    return b"".join(out)


def read(chunks: list[bytes], *, max_header_bytes: int = 16 * 1024):
    """The parts the events describe, and whether the closing boundary was seen; or the error."""
    stream = formstream.FormStream(BOUNDARY, max_header_bytes=max_header_bytes)
    parts: list[list] = []
    open_part = False
    try:
        for chunk in chunks:
            for event in stream.feed(chunk):
                if isinstance(event, formstream.PartStart):
                    assert not open_part, "a part started inside another"
                    parts.append([event.name, event.filename, bytearray()])
                    open_part = True
                elif isinstance(event, formstream.PartData):
                    assert open_part, "data outside a part"
                    parts[-1][2] += event.data
                elif isinstance(event, formstream.PartEnd):
                    assert open_part, "a part ended twice"
                    open_part = False
    except formstream.FormError:
        return "error"
    return [(n, f, bytes(c)) for n, f, c in parts], stream.finished


@FUZZ
@given(forms(), st.data())
def test_parts_come_back_whole_in_any_chunking(parts, data) -> None:
    body = encode(parts)
    assert read(data.draw(chunkings(body))) == (parts, True)


@FUZZ
@given(forms(), st.data())
def test_damaged_bodies_fail_cleanly_and_alike(parts, data) -> None:
    body = bytearray(encode(parts))
    for _ in range(data.draw(st.integers(1, 4))):
        body[data.draw(st.integers(0, len(body) - 1))] = data.draw(st.integers(0, 255))
    body = bytes(body[: data.draw(st.integers(0, len(body)))])
    assert read(data.draw(chunkings(body))) == read([body])


@FUZZ
@given(st.binary(max_size=1024), st.data())
def test_arbitrary_bytes_fail_cleanly_and_alike(body: bytes, data) -> None:
    if data.draw(st.booleans()):
        body = b"--" + BOUNDARY + b"\r\n" + body
    assert read(data.draw(chunkings(body))) == read([body])


@FUZZ
@given(st.integers(1, 64), st.data())
def test_header_budget_holds_in_any_chunking(budget: int, data) -> None:
    parts = [("video_file", "x" * 40, b"data")]
    body = encode(parts)
    header_bytes = len("Content-Disposition") + len('form-data; name="video_file"; filename="')
    result = read(data.draw(chunkings(body)), max_header_bytes=budget)
    if budget < header_bytes:
        assert result == "error"


@pytest.mark.parametrize(
    "content_type",
    [None, "", "text/plain", "multipart/form-data", "multipart/form-data; boundary=" + "b" * 201],
)
def test_unusable_content_types_are_form_errors(content_type) -> None:
    with pytest.raises(formstream.FormError):
        formstream.boundary_of(content_type)


PREAMBLES = [b"\n\x00", b"\r\n\r\n--" + BOUNDARY, b"preamble\r\n--" + BOUNDARY]


@pytest.mark.parametrize("body", PREAMBLES)
def test_a_preamble_is_refused_however_it_is_chunked(body: bytes) -> None:
    # Found by the fuzz above: python-multipart judged b"\n\x00" by its chunking.
    whole = read([body])
    assert whole == "error"
    assert all(read([body[:i], body[i:]]) == whole for i in range(1, len(body)))
