"""The jobs queue's messages in, the events queue's messages out (docs/conventions.md)."""

from __future__ import annotations

import dataclasses
import json
import uuid
from typing import Any


class InvalidJob(Exception):
    """The job message itself is unusable; `video_id` is set when one could still be read."""

    def __init__(self, reason: str, video_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.video_id = video_id


@dataclasses.dataclass(frozen=True)
class Job:
    video_id: str
    source_key: str
    processed_key: str
    thumbnail_key: str


def _video_id(body: Any) -> str | None:
    raw = body.get("video_id") if isinstance(body, dict) else None
    try:
        return str(uuid.UUID(str(raw))) if raw is not None else None
    except ValueError:
        return None


def parse_job(text: str) -> Job:
    try:
        body = json.loads(text)
    except ValueError:
        raise InvalidJob("job message is not JSON") from None
    video_id = _video_id(body)
    if video_id is None:
        raise InvalidJob("job message has no valid video_id")
    if body.get("type") != "process":
        raise InvalidJob(f"unknown job type {body.get('type')!r}", video_id)
    keys = {}
    for name in ("source_key", "processed_key", "thumbnail_key"):
        value = body.get(name)
        if not isinstance(value, str) or not value or len(value) > 1024:
            raise InvalidJob(f"job message has no valid {name}", video_id)
        keys[name] = value
    # The original is kept (api-contract.md): never let a job overwrite it.
    if keys["source_key"] in (keys["processed_key"], keys["thumbnail_key"]) or (
        keys["processed_key"] == keys["thumbnail_key"]
    ):
        raise InvalidJob("job message reuses one key for two objects", video_id)
    return Job(video_id=video_id, **keys)


def processed(job: Job, *, duration_seconds: float, size_bytes: int) -> dict[str, Any]:
    return {
        "type": "processed",
        "video_id": job.video_id,
        "processed_key": job.processed_key,
        "thumbnail_key": job.thumbnail_key,
        "duration_seconds": round(duration_seconds, 3),
        "size_bytes": size_bytes,
    }


def rejected(video_id: str, reason: str) -> dict[str, Any]:
    return {"type": "rejected", "video_id": video_id, "reason": reason}


def failed(video_id: str, reason: str) -> dict[str, Any]:
    return {"type": "failed", "video_id": video_id, "reason": reason}
