"""multipart/form-data read as a stream of events, without buffering or copying file contents:
python-multipart's callbacks queue events that the async caller then handles."""

from __future__ import annotations

import dataclasses

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

MAX_BOUNDARY = 200


class FormError(ValueError):
    """The body is not well-formed multipart/form-data."""


@dataclasses.dataclass(frozen=True)
class PartStart:
    name: str
    filename: str | None


@dataclasses.dataclass(frozen=True)
class PartData:
    data: memoryview


@dataclasses.dataclass(frozen=True)
class PartEnd:
    pass


Event = PartStart | PartData | PartEnd


def boundary_of(content_type: str | None) -> bytes:
    kind, params = parse_options_header(content_type or "")
    if kind != b"multipart/form-data":
        raise FormError("not multipart/form-data")
    boundary = params.get(b"boundary")
    if not boundary or len(boundary) > MAX_BOUNDARY:
        raise FormError("missing or invalid multipart boundary")
    return boundary


class FormStream:
    def __init__(self, boundary: bytes, *, max_header_bytes: int = 16 * 1024) -> None:
        self.finished = False
        self._events: list[Event] = []
        self._field = bytearray()
        self._value = bytearray()
        self._headers: dict[bytes, bytes] = {}
        self._header_bytes = 0
        self._max_header_bytes = max_header_bytes
        # No preamble: python-multipart judges one differently by how it was chunked.
        self._openings = (b"--" + boundary, b"\r\n--" + boundary)
        self._head: bytearray | None = bytearray()
        self._parser = MultipartParser(
            boundary,
            callbacks={
                "on_part_begin": self._on_part_begin,
                "on_header_field": self._on_header_field,
                "on_header_value": self._on_header_value,
                "on_header_end": self._on_header_end,
                "on_headers_finished": self._on_headers_finished,
                "on_part_data": self._on_part_data,
                "on_part_end": self._on_part_end,
                "on_end": self._on_end,
            },
        )

    def feed(self, chunk: bytes) -> list[Event]:
        if self.finished:
            # The epilogue after the closing boundary is ignored, as RFC 2046 allows.
            return []
        if self._head is not None:
            self._head += chunk
            head = bytes(self._head)
            if any(opening.startswith(head) for opening in self._openings):
                return []  # too short to judge yet
            if not any(head.startswith(opening) for opening in self._openings):
                raise FormError("the body does not start with the multipart boundary")
            chunk, self._head = head, None
        try:
            self._parser.write(chunk)
        except MultipartParseError as exc:
            raise FormError(str(exc)) from None
        events, self._events = self._events, []
        return events

    def _on_part_begin(self) -> None:
        self._headers = {}

    def _count(self, n: int) -> None:
        self._header_bytes += n
        if self._header_bytes > self._max_header_bytes:
            raise MultipartParseError("too many part header bytes")

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._count(end - start)
        self._field += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._count(end - start)
        self._value += data[start:end]

    def _on_header_end(self) -> None:
        self._headers[bytes(self._field).strip().lower()] = bytes(self._value).strip()
        self._field.clear()
        self._value.clear()

    def _on_headers_finished(self) -> None:
        disposition, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        if disposition != b"form-data" or b"name" not in params:
            raise MultipartParseError("part without a form-data name")
        name = params[b"name"].decode("utf-8", "replace")
        filename = params.get(b"filename")
        self._events.append(
            PartStart(name, filename.decode("utf-8", "replace") if filename is not None else None)
        )

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        self._events.append(PartData(memoryview(data)[start:end]))

    def _on_part_end(self) -> None:
        self._events.append(PartEnd())

    def _on_end(self) -> None:
        self.finished = True
