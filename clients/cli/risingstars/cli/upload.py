"""Resumable uploads through the API's direct-to-storage path.

The API hands out one presigned URL per part of an S3 multipart upload and can say which parts
it already holds, so an upload survives Ctrl-C, a dropped link or a closed laptop: the CLI
remembers the upload for this file (path, size, modification time) and, run again with the same
file, sends only the parts that are missing. A file that changed starts a new upload.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from risingstars.cli import store
from risingstars.cli.api import Api, ApiError

CHUNK = 256 * 1024
PART_RETRIES = 5
URL_RENEWALS = 3

Progress = Callable[[int], None]


def _file_key(base_url: str, path: Path) -> str:
    stat = path.stat()
    return f"{base_url}|{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"


def _read_part(path: Path, offset: int, size: int, advance: Progress) -> Iterator[bytes]:
    with path.open("rb") as f:
        f.seek(offset)
        left = size
        while left:
            chunk = f.read(min(CHUNK, left))
            if not chunk:
                raise OSError(f"{path} changed while it was being uploaded")
            left -= len(chunk)
            advance(len(chunk))
            yield chunk


class Uploader:
    def __init__(self, api: Api, *, sleep: Callable[[float], None] | None = None) -> None:
        self.api = api
        self.state = store.uploads()
        self.sleep = sleep or api.sleep

    def _resume_or_create(self, path: Path, title: str) -> tuple[str, dict[str, Any]]:
        key = _file_key(self.api.base_url, path)
        upload_id = self.state.get(key)
        if upload_id:
            try:
                return key, self.api.call("GET", f"/api/videos/uploads/{upload_id}")
            except ApiError as exc:
                if exc.status != 404:
                    raise
                self.state.put(key, None)  # Expired or cancelled: start again.
        created = self.api.call(
            "POST", "/api/videos/uploads", json={"title": title, "size": path.stat().st_size}
        )
        self.state.put(key, created["upload_id"])
        return key, created

    def _put_part(self, path: Path, offset: int, part: dict[str, Any], advance: Progress) -> None:
        size = part["size"]
        for attempt in range(PART_RETRIES):
            sent = 0

            def count(n: int) -> None:
                nonlocal sent
                sent += n
                advance(n)

            try:
                response = self.api.http.put(
                    part["url"],
                    content=_read_part(path, offset, size, count),
                    # Presigned part URLs may sign the length: never send it chunked.
                    headers={"Content-Length": str(size)},
                    timeout=httpx.Timeout(60.0, write=120.0),
                )
            except httpx.TransportError:
                response = None
            if response is not None and response.status_code < 300:
                return
            advance(-sent)  # The part starts over: take back what the bar counted.
            if response is not None and response.status_code < 500:
                refused = f"el almacenamiento rechazó la parte {part['part_number']}"
                raise ApiError(response.status_code, refused)
            self.sleep(min(30.0, 0.5 * 2**attempt))
        raise ApiError(503, f"no se pudo subir la parte {part['part_number']}; vuelva a intentarlo")

    def upload(
        self, path: Path, title: str, *, started: Callable[[int, int], None], advance: Progress
    ) -> dict[str, Any]:
        """Send what is missing of `path`; `started(total, already_stored)` comes first."""
        key, upload = self._resume_or_create(path, title)
        stored = sum(p["size"] for p in upload["parts"] if p["uploaded"])
        started(upload["size"], stored)
        for renewal in range(URL_RENEWALS + 1):
            try:
                for part in (p for p in upload["parts"] if not p["uploaded"]):
                    offset = (part["part_number"] - 1) * upload["part_size"]
                    self._put_part(path, offset, part, advance)
                    part["uploaded"] = True
                break
            except ApiError as exc:
                # Part URLs are short-lived: an upload longer than their life asks for new ones.
                if exc.status != 403 or renewal == URL_RENEWALS:
                    raise
                upload = self.api.call("GET", f"/api/videos/uploads/{upload['upload_id']}")
        result = self.api.call("POST", f"/api/videos/uploads/{upload['upload_id']}/complete")
        self.state.put(key, None)
        return result
