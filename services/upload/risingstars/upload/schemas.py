"""The shapes of the videos API's answers, for its OpenAPI document (and the answers are
checked against them). The contract's fields first; extensions after."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from risingstars.kit.errors import ErrorBody
from risingstars.upload.text import TITLE_MAX, VISIBLE_PATTERN

# What text.clean_title takes, stated for clients and fuzzers (whitespace is collapsed, so a
# longer title may still be taken).
TITLE_SCHEMA = {
    "type": "string",
    "minLength": 1,
    "maxLength": TITLE_MAX,
    "allOf": [
        {"pattern": VISIBLE_PATTERN},
        {
            "pattern": r"^[^\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f"
            r"\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]*$"
        },
    ],
}


class NewUpload(BaseModel):
    """A direct upload to create: the title is checked by the service (its message), the
    size by the document too."""

    title: str = Field(json_schema_extra=TITLE_SCHEMA)
    size: int = Field(
        json_schema_extra={"minimum": 1, "maximum": 104_857_600},
        description="The file's size in bytes (at most MAX_UPLOAD_BYTES)",
    )


class Uploaded(BaseModel):
    message: str = Field(examples=["Video subido correctamente. Procesamiento en curso."])
    task_id: str = Field(description="The same value as video_id (the client's original field)")
    video_id: str


class QueuePlace(BaseModel):
    position: int | None = Field(
        description="Videos waiting ahead of this one (0: being processed or next); null "
        "while the service has not read the queue yet",
        examples=[3],
    )
    eta_seconds: int | None = Field(
        description="About how long until it is processed: (position + 1) × the mean "
        "processing time of recent videos ÷ the videos being processed now; null until a "
        "processing time has been measured",
        examples=[90],
    )


class VideoSummary(BaseModel):
    video_id: str
    title: str
    status: str = Field(examples=["uploaded", "processed", "failed", "rejected"])
    uploaded_at: str
    processed_at: str | None
    processed_url: str | None
    # Extension.
    queue: QueuePlace | None = Field(
        None,
        description="While the video waits for processing or is being processed; null once "
        "processed, failed or rejected. Refreshed every few seconds.",
    )


class VideoDetail(VideoSummary):
    original_url: str | None
    votes: int
    # Extensions.
    thumbnail_url: str | None = None
    failure_reason: str | None = Field(None, description="Why processing failed, in Spanish")
    failure_code: str | None = None
    size_bytes: int | None = None
    duration_seconds: float | None = None
    width: int | None = None
    height: int | None = None


class Deleted(BaseModel):
    message: str = Field(examples=["El video ha sido eliminado exitosamente."])
    video_id: str


class PublicVideo(BaseModel):
    video_id: str
    title: str
    username: str
    city: str
    processed_url: str | None
    votes: int
    # Extension.
    thumbnail_url: str | None = Field(None, description="The processed video's thumbnail (JPEG)")


class Voted(BaseModel):
    message: str = Field(examples=["Voto registrado exitosamente."])


class Ranking(BaseModel):
    position: int
    username: str
    city: str
    votes: int


class DirectPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    part_number: int
    size: int
    uploaded: bool
    url: str | None = Field(None, description="Presigned PUT URL, while the part is missing")


class DirectUpload(BaseModel):
    model_config = ConfigDict(extra="allow")
    upload_id: str
    video_id: str
    title: str
    size: int
    part_size: int
    expires_at: str | None
    parts: list[DirectPart]


class Cancelled(BaseModel):
    message: str
    upload_id: str


# The tus requests' headers, stated for clients and fuzzers.
def _header(name: str, schema: dict, description: str) -> dict:
    return {
        "name": name,
        "in": "header",
        "required": True,
        "schema": schema,
        "description": description,
    }


_BASE64 = r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?"
_METADATA_ITEM = rf" *[\x21-\x2b\x2d-\x7e]+(?: +{_BASE64})? *"
TUS_METADATA_PATTERN = rf"^{_METADATA_ITEM}(?:,{_METADATA_ITEM})*$"
TUS_VERSION_HEADER = _header("Tus-Resumable", {"type": "string", "enum": ["1.0.0"]}, "tus 1.0")
TUS_CREATE = {
    "parameters": [
        TUS_VERSION_HEADER,
        _header(
            "Upload-Length",
            {"type": "integer", "minimum": 1, "maximum": 104_857_600},
            "The file's size in bytes, at most MAX_UPLOAD_BYTES",
        ),
        _header(
            "Upload-Metadata",
            {"type": "string", "pattern": TUS_METADATA_PATTERN, "maxLength": 4096},
            "`key base64value` pairs; `title` (or `filename`) is required",
        ),
    ]
}
TUS_APPEND = {
    "parameters": [
        TUS_VERSION_HEADER,
        _header(
            "Upload-Offset",
            {"type": "integer", "minimum": 0, "maximum": 104_857_600},
            "Where these bytes go: the upload's offset as HEAD reports it",
        ),
    ],
    "requestBody": {
        "required": True,
        "content": {
            "application/offset+octet-stream": {"schema": {"type": "string", "format": "binary"}}
        },
    },
}
# HEAD and DELETE carry only the protocol version (412 without it).
TUS_VERSION_ONLY = {"parameters": [TUS_VERSION_HEADER]}


def errors(*statuses: int) -> dict[int | str, dict]:
    """The error answers a route declares, all `{"detail": ...}`."""
    return {status: {"model": ErrorBody} for status in statuses}
