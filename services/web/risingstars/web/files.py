"""The built app held in memory: a few hundred KB, read once, each file with its gzip twin (made
by the build) and an ETag, so a request costs no disk read and no compression."""

from __future__ import annotations

import dataclasses
import hashlib
import mimetypes
from pathlib import Path

INDEX = "index.html"
PACKAGED = Path(__file__).resolve().parent / "static"
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".json": "application/json",
}


class MissingBuild(Exception):
    """The web root holds no build."""


@dataclasses.dataclass(frozen=True)
class File:
    body: bytes
    gzipped: bytes | None
    content_type: str
    etag: str


def load(root: Path) -> dict[str, File]:
    """Every file under `root` by its path relative to it (`index.html`, `assets/app.<hash>.js`)."""
    if not (root / INDEX).is_file():
        raise MissingBuild(f"{root} holds no {INDEX}: build the app first (make web)")
    files: dict[str, File] = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.suffix == ".gz":
            continue
        body = path.read_bytes()
        twin = path.with_name(path.name + ".gz")
        kind = TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0]
        files[path.relative_to(root).as_posix()] = File(
            body=body,
            gzipped=twin.read_bytes() if twin.is_file() else None,
            content_type=kind or "application/octet-stream",
            etag='"' + hashlib.sha256(body).hexdigest()[:20] + '"',
        )
    return files
