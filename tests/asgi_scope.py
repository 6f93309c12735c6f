"""ASGI scopes for tests that drive an app's receive and send themselves."""

from __future__ import annotations

from typing import Any


def upload_scope(headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    """The ASGI scope of a `POST /api/videos/upload`, for tests that drive the app's receive
    and send themselves (pauses, disconnects mid-body)."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/videos/upload",
        "raw_path": b"/api/videos/upload",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 5000),
        "server": ("upload.test", 80),
        "state": {},
    }
