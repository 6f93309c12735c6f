"""The shapes of the videos API's answers, for its OpenAPI document (and the answers are
checked against them). The contract's fields first; extensions after."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from risingstars.kit.errors import ErrorBody

# One error shape for every service (kit.errors produces it).
Error = ErrorBody


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


def errors(*statuses: int) -> dict[int | str, dict]:
    """The error answers a route declares, all `{"detail": ...}`."""
    return {status: {"model": Error} for status in statuses}
