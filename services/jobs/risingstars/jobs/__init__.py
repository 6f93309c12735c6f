"""The messages the upload service and the processor exchange over SQS, defined once.

Jobs queue (upload -> processor): `Job`. Events queue (processor -> upload): `Started` (an attempt
began), `Processed` and `Failed` (kind `failed` or `rejected`). Every message carries `version`; a
message without one is version 1 (sent before the field existed), a newer major version is refused
rather than misread. Optional fields added later (`service_seconds`) keep the version: a message
without them still parses, and readers that predate them ignore them. So does a new event type
(`started`): a reader that predates it drops it as unknown, which costs only the `processing` state.
Failures travel as stable `Reason` codes: the upload service turns a code into the owner's message,
so nothing the processor saw (ffmpeg's stderr, scratch paths) reaches a client.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import uuid
from typing import Any, Literal

VERSION = 1
MAX_KEY_LENGTH = 1024  # S3's own limit on an object key
MAX_DETAIL_LENGTH = 1000


class InvalidMessage(ValueError):
    """The message itself is unusable; `video_id` is set when one could still be read."""

    def __init__(self, reason: str, video_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.video_id = video_id


class Reason(enum.StrEnum):
    """Why a video was not processed; stable codes, part of the contract between services."""

    # `rejected`: the uploaded file itself cannot be made into a video (no retry helps).
    NOT_A_VIDEO = "not_a_video"
    PICTURE_TOO_LARGE = "picture_too_large"
    FRAME_RATE_TOO_HIGH = "frame_rate_too_high"
    TOO_SLOW = "too_slow"
    OUTPUT_TOO_LARGE = "output_too_large"
    # `failed`: processing gave up (retries exhausted, or nothing left to process).
    SOURCE_MISSING = "source_missing"
    INVALID_JOB = "invalid_job"
    PROCESSING_FAILED = "processing_failed"
    # Dead-lettered with no report: the processor stopped during every attempt.
    ABANDONED = "abandoned"

    @classmethod
    def parse(cls, value: Any) -> Reason:
        """Unknown codes (an older or newer processor) read as the generic failure."""
        try:
            return cls(value)
        except ValueError:
            return cls.PROCESSING_FAILED


@dataclasses.dataclass(frozen=True)
class Job:
    video_id: str
    source_key: str
    processed_key: str
    thumbnail_key: str
    type: Literal["process"] = "process"


@dataclasses.dataclass(frozen=True)
class Processed:
    video_id: str
    processed_key: str
    thumbnail_key: str
    duration_seconds: float
    size_bytes: int
    # How long the processor worked on the job (absent from older processors, and when it only
    # found the output of an earlier attempt): the upload service's queue ETA averages it.
    service_seconds: float | None = None
    type: Literal["processed"] = "processed"


@dataclasses.dataclass(frozen=True)
class Failed:
    video_id: str
    kind: Literal["failed", "rejected"]
    reason: Reason
    # English, for logs and operators; never shown to clients.
    detail: str = ""
    # How long the attempt that ended this way kept a processor busy (absent from older
    # processors): the queue ETA counts the time failures take too.
    service_seconds: float | None = None

    @property
    def type(self) -> str:
        return self.kind


@dataclasses.dataclass(frozen=True)
class Started:
    """A processor began an attempt at the job (sent on every attempt; the video is then
    `processing` unless it has already ended)."""

    video_id: str
    type: Literal["started"] = "started"


Event = Processed | Failed | Started
Message = Job | Event


def encode(message: Message) -> str:
    if isinstance(message, Failed):
        body: dict[str, Any] = {
            "type": message.kind,
            "video_id": message.video_id,
            "reason": str(message.reason),
            "detail": message.detail[:MAX_DETAIL_LENGTH],
            "service_seconds": message.service_seconds,
        }
    else:
        body = dataclasses.asdict(message)
        body["type"] = message.type
    if body.get("service_seconds", 0) is None:
        del body["service_seconds"]
    body["version"] = VERSION
    return json.dumps(body, separators=(",", ":"))


def _load(text: str | bytes) -> dict[str, Any]:
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):
        raise InvalidMessage("message is not JSON") from None
    if not isinstance(body, dict):
        raise InvalidMessage("message is not a JSON object")
    version = body.get("version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= VERSION:
        raise InvalidMessage(f"unsupported message version {version!r}", _video_id(body))
    return body


def _video_id(body: dict[str, Any]) -> str | None:
    raw = body.get("video_id")
    if raw is None:
        return None
    try:
        return str(uuid.UUID(str(raw)))
    except ValueError:
        return None


def _key(body: dict[str, Any], name: str, video_id: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value or len(value) > MAX_KEY_LENGTH:
        raise InvalidMessage(f"message has no valid {name}", video_id)
    return value


def _seconds(value: Any) -> float | None:
    """An optional measurement: an unusable one reads as absent, never refuses the event."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not 0 <= value < float("inf"):
        return None
    return float(value)


def parse_job(text: str | bytes) -> Job:
    body = _load(text)
    video_id = _video_id(body)
    if video_id is None:
        raise InvalidMessage("job message has no valid video_id")
    if body.get("type") != "process":
        raise InvalidMessage(f"unknown job type {str(body.get('type'))[:50]!r}", video_id)
    names = ("source_key", "processed_key", "thumbnail_key")
    keys = {name: _key(body, name, video_id) for name in names}
    # The original is kept (the contract): a job must never overwrite it, nor one output another.
    if len(set(keys.values())) != 3:
        raise InvalidMessage("job message reuses one key for two objects", video_id)
    return Job(video_id=video_id, **keys)


def parse_event(text: str | bytes) -> Event:
    body = _load(text)
    video_id = _video_id(body)
    if video_id is None:
        raise InvalidMessage("event has no valid video_id")
    kind = body.get("type")
    if kind == "processed":
        duration, size = body.get("duration_seconds"), body.get("size_bytes")
        if not isinstance(duration, int | float) or isinstance(duration, bool) or duration < 0:
            raise InvalidMessage("processed event has no valid duration_seconds", video_id)
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidMessage("processed event has no valid size_bytes", video_id)
        return Processed(
            video_id=video_id,
            processed_key=_key(body, "processed_key", video_id),
            thumbnail_key=_key(body, "thumbnail_key", video_id),
            duration_seconds=float(duration),
            size_bytes=size,
            service_seconds=_seconds(body.get("service_seconds")),
        )
    if kind in ("failed", "rejected"):
        detail = body.get("detail")
        return Failed(
            video_id=video_id,
            kind=kind,
            reason=Reason.parse(body.get("reason")),
            detail=detail[:MAX_DETAIL_LENGTH] if isinstance(detail, str) else "",
            service_seconds=_seconds(body.get("service_seconds")),
        )
    if kind == "started":
        return Started(video_id=video_id)
    raise InvalidMessage(f"unknown event type {str(kind)[:50]!r}", video_id)
