"""tus 1.0 resumable uploads (extension): the HTTP side of `tus.py`.

`OPTIONS` needs no token (clients and browsers probe it); every other request carries the
caller's JWT and `Tus-Resumable: 1.0.0`. The request that completes an upload answers like
`POST /api/videos/upload` as far as tus allows: a 204 carries no body, so the video's id comes
in the `Video-Id` and `Task-Id` headers (and in `HEAD` afterwards).
"""

from __future__ import annotations

import email.utils
import logging
import time
import uuid

from fastapi import APIRouter, Request, Response
from starlette.requests import ClientDisconnect

from risingstars.kit import errors
from risingstars.upload import capacity, catalog, intake, metrics, schemas, tus
from risingstars.upload.deps import Runtime, User

log = logging.getLogger("risingstars.upload.tus")

PATH = "/api/videos/tus"
router = APIRouter(prefix=PATH, tags=["tus resumable uploads"])
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"


_CODES = {
    400: "invalid",
    404: "not_found",
    409: "conflict",
    410: "gone",
    412: "tus_version",
    413: "too_large",
    415: "unsupported_media_type",
    503: "unavailable",
}


class TusAnswer(errors.ServiceError):
    """A tus error answer: the kit's `{"detail", "code"}` body, with the headers the protocol
    wants on every response."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        code: str | None = None,
        extra: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail, code=code or _CODES.get(status, "error"))
        self.status_code = status
        self._headers = {"Tus-Resumable": tus.VERSION, **(extra or {})}
        if status == 412:
            self._headers["Tus-Version"] = tus.VERSION

    def headers(self) -> dict[str, str]:
        return self._headers


def _check_version(request: Request) -> None:
    if request.headers.get("tus-resumable") != tus.VERSION:
        raise TusAnswer(412, f"Se requiere la cabecera Tus-Resumable: {tus.VERSION}")


def _whole_number(request: Request, name: str) -> int:
    raw = request.headers.get(name, "")
    if not raw.isascii() or not raw.isdigit() or len(raw) > 15:
        raise TusAnswer(400, f"La cabecera {name} es obligatoria y debe ser un entero no negativo")
    return int(raw)


def _owner(user) -> catalog.Uploader:
    return catalog.Uploader.from_claims(user)


def _upload_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise TusAnswer(404, "La subida no existe") from None


def _headers(upload: tus.Upload) -> dict[str, str]:
    headers = {
        "Tus-Resumable": tus.VERSION,
        "Upload-Offset": str(upload.offset),
        "Upload-Expires": email.utils.format_datetime(upload.expires_at, usegmt=True),
        "Cache-Control": "no-store",
    }
    if upload.completed:
        headers["Video-Id"] = headers["Task-Id"] = str(upload.video_id)
    return headers


async def _append(rt, request: Request, upload: tus.Upload, offset: int) -> tus.Upload:
    started = time.perf_counter()
    try:
        upload = await rt.tus.append(upload, offset, intake.body_of(request.receive))
    except tus.TusError as exc:
        if exc.status == 400:
            metrics.UPLOADS.labels("tus", "rejected", "invalid").inc()
        raise TusAnswer(exc.status, exc.detail) from None
    except capacity.Refused as exc:
        metrics.UPLOADS.labels("tus", exc.outcome, exc.reason).inc()
        raise TusAnswer(exc.status_code, exc.detail, code=exc.code, extra=exc.headers()) from None
    if upload.completed:
        metrics.UPLOADS.labels("tus", "accepted", "ok").inc()
        metrics.UPLOAD_DURATION.labels("accepted").observe(time.perf_counter() - started)
        log.info("tus upload complete", extra={"video_id": str(upload.video_id)})
    return upload


@router.options("", status_code=204)
@router.options("/", status_code=204)
@router.options("/{upload_id}", status_code=204)
async def capabilities(rt: Runtime) -> Response:
    return Response(
        status_code=204,
        headers={
            "Tus-Resumable": tus.VERSION,
            "Tus-Version": tus.VERSION,
            "Tus-Extension": tus.EXTENSIONS,
            "Tus-Max-Size": str(rt.settings.max_upload_bytes),
        },
    )


CREATED = {
    "status_code": 201,
    "response_class": Response,  # the answer is in its headers
    "responses": schemas.errors(400, 401, 408, 412, 413, 429, 503),
    "openapi_extra": schemas.TUS_CREATE,
}


@router.post("", **CREATED)
@router.post("/", **CREATED)
async def create(request: Request, user: User, rt: Runtime) -> Response:
    _check_version(request)
    if "upload-defer-length" in request.headers:
        raise TusAnswer(400, "Upload-Defer-Length no está soportado: envíe Upload-Length")
    length = _whole_number(request, "upload-length")
    if length == 0:
        raise TusAnswer(400, "Upload-Length debe ser mayor que 0")
    try:
        upload = await rt.tus.create(_owner(user), length, request.headers.get("upload-metadata"))
    except tus.TusError as exc:
        raise TusAnswer(exc.status, exc.detail) from None
    if request.headers.get("content-type", "").startswith(OFFSET_CONTENT_TYPE):
        try:
            upload = await _append(rt, request, upload, 0)
        except ClientDisconnect:
            return Response(status_code=400)
    headers = _headers(upload) | {"Location": f"{PATH}/{upload.id}"}
    return Response(status_code=201, headers=headers)


@router.head("/{upload_id}", responses=schemas.errors(401, 404, 410))
async def offset(upload_id: str, user: User, rt: Runtime) -> Response:
    try:
        upload = await rt.tus.get(_upload_id(upload_id), user.sub)
    except tus.TusError as exc:
        raise TusAnswer(exc.status, exc.detail) from None
    headers = _headers(upload) | {"Upload-Length": str(upload.length)}
    if upload.metadata:
        headers["Upload-Metadata"] = upload.metadata
    return Response(status_code=200, headers=headers)


@router.patch(
    "/{upload_id}",
    status_code=204,
    responses=schemas.errors(400, 401, 404, 408, 409, 410, 412, 415, 503),
    openapi_extra=schemas.TUS_APPEND,
)
async def append(upload_id: str, request: Request, user: User, rt: Runtime) -> Response:
    _check_version(request)
    if not request.headers.get("content-type", "").startswith(OFFSET_CONTENT_TYPE):
        raise TusAnswer(415, f"Content-Type debe ser {OFFSET_CONTENT_TYPE}")
    start = _whole_number(request, "upload-offset")
    try:
        upload = await rt.tus.get(_upload_id(upload_id), user.sub)
    except tus.TusError as exc:
        raise TusAnswer(exc.status, exc.detail) from None
    try:
        upload = await _append(rt, request, upload, start)
    except ClientDisconnect:
        log.info("tus request ended early; its bytes are kept", extra={"upload_id": upload_id})
        return Response(status_code=400)
    return Response(status_code=204, headers=_headers(upload))


@router.delete(
    "/{upload_id}",
    status_code=204,
    responses=schemas.errors(401, 404, 409, 410, 412),
    openapi_extra=schemas.TUS_TERMINATE,
)
async def terminate(upload_id: str, request: Request, user: User, rt: Runtime) -> Response:
    _check_version(request)
    try:
        upload = await rt.tus.get(_upload_id(upload_id), user.sub)
        await rt.tus.terminate(upload)
    except tus.TusError as exc:
        raise TusAnswer(exc.status, exc.detail) from None
    return Response(status_code=204, headers={"Tus-Resumable": tus.VERSION})
