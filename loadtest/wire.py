"""The load test's HTTP: stdlib `http.client` (cooperative under Locust's gevent), with the
request body sent as the client profile dictates.

Profiles:
- `full`: the body as fast as the server takes it;
- `link`: at most `rate` bytes/s per user; a chunk the server held back (back-pressure) is never
  made up for by sending the next ones faster, as on a real link;
- `stall`: the first `head` bytes, then a pause of `pause` seconds, then the rest.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from typing import Any

CHUNK = 64 * 1024
FULL_CHUNK = 1024 * 1024
IDLE = 3.0  # seconds a kept-alive connection may sit unused before it is replaced


@dataclasses.dataclass(frozen=True)
class Profile:
    name: str = "full"
    rate: float = 130_000.0  # bytes/s, `link`
    head: int = 64 * 1024  # bytes sent before the pause, `stall`
    pause: float = 10.0  # seconds, `stall`


def paced(
    parts: list[bytes | memoryview],
    profile: Profile,
    sleep: Callable[[float], Any],
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[memoryview]:
    """The body as chunks, timed as `profile` says. Each yield returns after the caller sent the
    chunk, so the time measured between yields includes any wait the server imposed."""
    if profile.name == "full":
        for part in parts:
            view = memoryview(part)
            for i in range(0, len(view), FULL_CHUNK):
                yield view[i : i + FULL_CHUNK]
        return
    sent = 0
    last = clock()
    for part in parts:
        view = memoryview(part)
        for i in range(0, len(view), CHUNK):
            chunk = view[i : i + CHUNK]
            if profile.name == "stall" and sent < profile.head <= sent + len(chunk):
                yield chunk[: profile.head - sent]
                sleep(profile.pause)
                chunk = chunk[profile.head - sent :]
                sent = profile.head
                last = clock()
            yield chunk
            sent += len(chunk)
            if profile.name == "link":
                # The chunk took at least len/rate on the wire; time already lost stays lost.
                now = clock()
                wait = len(chunk) / profile.rate - (now - last)
                if wait > 0:
                    sleep(wait)
                last = clock()


@dataclasses.dataclass
class Response:
    status: int
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


class Client:
    """Keep-alive connections per origin for one simulated user."""

    def __init__(self, timeout: float = 900.0) -> None:
        self.timeout = timeout
        self.connections: dict[tuple[str, str], http.client.HTTPConnection] = {}
        self.used: dict[tuple[str, str], float] = {}

    def _connection(self, scheme: str, netloc: str) -> http.client.HTTPConnection:
        key = (scheme, netloc)
        conn = self.connections.get(key)
        if conn is not None and time.monotonic() - self.used.get(key, 0) > IDLE:
            # The server may be closing it right now (uvicorn's keep-alive is 5 s): a request
            # sent on it could die without an answer, which is the client's fault, not the
            # server's. Browsers and HTTP libraries open a new one too.
            conn.close()
            conn = None
        if conn is None:
            cls = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
            conn = self.connections[key] = cls(netloc, timeout=self.timeout)
        return conn

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        body: bytes | Iterator[memoryview] | None = None,
        length: int | None = None,
    ) -> Response:
        parsed = urllib.parse.urlsplit(url)
        path = parsed.path + (f"?{parsed.query}" if parsed.query else "")
        conn = self._connection(parsed.scheme, parsed.netloc)
        headers = dict(headers or {})
        if length is not None:
            headers["Content-Length"] = str(length)
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
        except BaseException:
            # A half-sent request leaves the connection unusable.
            conn.close()
            self.connections.pop((parsed.scheme, parsed.netloc), None)
            raise
        self.used[(parsed.scheme, parsed.netloc)] = time.monotonic()
        if response.getheader("connection", "").lower() == "close":
            conn.close()
        return Response(response.status, data, {k.lower(): v for k, v in response.getheaders()})

    def json(self, method: str, url: str, payload: Any = None, token: str | None = None):
        headers = {"Accept": "application/json"}
        body = None
        if payload is not None:
            body = json.dumps(payload).encode()
            headers["Content-Type"] = "application/json"
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return self.request(method, url, headers=headers, body=body)

    def close(self) -> None:
        for conn in self.connections.values():
            conn.close()
        self.connections.clear()


# A presigned part PUT answered 5xx or cut off is tried this many times in all, the pause
# doubling from PART_RETRY_PAUSE seconds (as the AWS SDKs' standard retry mode does).
PART_RETRIES = 4
PART_RETRY_PAUSE = 0.5


def put_retried(
    client: Client,
    url: str,
    body: Callable[[], Iterator[memoryview]],
    length: int,
    sleep: Callable[[float], None],
    attempts: int = PART_RETRIES,
) -> Response:
    """PUT a part to its presigned URL, again on a 5xx or a dropped connection, as the AWS SDKs
    and browsers' multipart uploaders do (a part PUT is idempotent): only a part that still
    fails is what a real client reports. `body()` makes the body afresh for each attempt."""
    for attempt in range(attempts):
        last = attempt == attempts - 1
        try:
            response = client.request("PUT", url, body=body(), length=length)
        except OSError:
            if last:
                raise
        else:
            if response.status < 500 or last:
                return response
        sleep(PART_RETRY_PAUSE * 2**attempt)
    raise AssertionError("attempts must be at least 1")


def multipart(title: str, filename: str, data: bytes) -> tuple[str, list[bytes | memoryview]]:
    """The form `POST /api/videos/upload` takes, as (content type, body parts)."""
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="title"\r\n\r\n{title}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="video_file"; '
        f'filename="{filename}"\r\nContent-Type: video/mp4\r\n\r\n'
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    return f"multipart/form-data; boundary={boundary}", [head, memoryview(data), tail]
