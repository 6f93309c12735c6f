"""Resumable uploads by the tus 1.0 protocol (the API's `/api/videos/tus/`).

The CLI remembers the upload URL of each file (path, size, modification time) and, run again
with the same file after Ctrl-C or a dropped link, asks the server how much it holds (HEAD) and
sends only the rest. A file that changed starts a new upload; an upload the server forgot
(expired, cancelled) starts over.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from risingstars.cli import store
from risingstars.cli.api import Api, ApiError, detail

TUS_PATH = "/api/videos/tus/"
TUS = {"Tus-Resumable": "1.0.0"}
# One PATCH request per chunk: a dropped link costs at most the bytes of the request in flight
# (the server keeps what reached it).
CHUNK_BYTES = 5 * 1024 * 1024
READ_BYTES = 256 * 1024
PATCH_RETRIES = 5
UPLOADED = "Video subido correctamente. Procesamiento en curso."
NOT_RECORDED = (
    "El archivo llegó completo pero el video aún no quedó registrado: ejecute el mismo comando "
    "de nuevo para terminar la carga."
)

Progress = Callable[[int], None]


def _file_key(base_url: str, path: Path) -> str:
    stat = path.stat()
    return f"{base_url}|{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"


def _metadata(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


def _read(path: Path, offset: int, size: int, advance: Progress) -> Iterator[bytes]:
    with path.open("rb") as f:
        f.seek(offset)
        left = size
        while left:
            chunk = f.read(min(READ_BYTES, left))
            if not chunk:
                raise OSError(f"{path} changed while it was being uploaded")
            left -= len(chunk)
            advance(len(chunk))
            yield chunk


class Uploader:
    def __init__(self, api: Api) -> None:
        self.api = api
        self.state = store.uploads()

    def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """A tus request with the caller's token; errors carry the server's message."""
        headers = {**TUS, **kwargs.pop("headers", {})}
        response = self.api.request(method, url, headers=headers, **kwargs)
        if response.status_code >= 400:
            raise ApiError(response.status_code, detail(response))
        return response

    def _resume_or_create(self, path: Path, title: str) -> tuple[str, str, int]:
        key = _file_key(self.api.base_url, path)
        url = self.state.get(key)
        if url:
            try:
                offset = int(self._request("HEAD", url).headers["Upload-Offset"])
                return key, url, offset
            except ApiError as exc:
                if exc.status not in (404, 410):
                    raise
                self.state.put(key, None)  # expired or cancelled: start again
        created = self._request(
            "POST",
            TUS_PATH,
            headers={
                "Upload-Length": str(path.stat().st_size),
                "Upload-Metadata": _metadata(title=title, filename=path.name),
            },
        )
        url = httpx.URL(self.api.base_url).join(created.headers["Location"])
        self.state.put(key, str(url))
        return key, str(url), 0

    def upload(
        self, path: Path, title: str, *, started: Callable[[int, int], None], advance: Progress
    ) -> dict[str, Any]:
        """Send what is missing of `path`; `started(total, already_stored)` comes first."""
        key, url, offset = self._resume_or_create(path, title)
        size = path.stat().st_size
        started(size, offset)
        response = None
        failures = 0
        while offset < size:
            length = min(CHUNK_BYTES, size - offset)
            sent = 0

            def count(n: int) -> None:
                nonlocal sent
                sent += n
                advance(n)

            try:
                response = self._request(
                    "PATCH",
                    url,
                    headers={
                        "Content-Type": "application/offset+octet-stream",
                        "Upload-Offset": str(offset),
                        "Content-Length": str(length),
                    },
                    content=_read(path, offset, length, count),
                    timeout=httpx.Timeout(60.0, write=120.0),
                )
                offset = int(response.headers["Upload-Offset"])
                failures = 0
            except (httpx.TransportError, ApiError) as exc:
                retryable = (
                    not isinstance(exc, ApiError)
                    or exc.status >= 500
                    or exc.status
                    in (
                        409,
                        423,  # another request of ours still holds the upload
                    )
                )
                failures += 1
                if not retryable or failures > PATCH_RETRIES:
                    raise
                self.api.sleep(min(30.0, 0.5 * 2**failures))
                # Ask the server what it kept (it keeps what reached it) and go on from there.
                shown = offset + sent
                offset = int(self._request("HEAD", url).headers["Upload-Offset"])
                advance(offset - shown)
        if response is None or "Video-Id" not in response.headers:
            response = self._request("HEAD", url)
        video_id = response.headers.get("Video-Id")
        if video_id is None:
            # Every byte arrived but the server has not recorded the video (its last request
            # failed late): the upload stays known here, and running the command again resends
            # the last request.
            raise ApiError(503, NOT_RECORDED)
        self.state.put(key, None)
        return {"message": UPLOADED, "task_id": video_id, "video_id": video_id}
