"""tus 1.0 resumable uploads (extension): the HTTP side of `tus.py`. OPTIONS needs no token;
every answer carries `Tus-Resumable`. A 204 has no body, so the request that completes an upload
names the video in the `Video-Id` and `Task-Id` headers (and HEAD does afterwards)."""

from __future__ import annotations

import email.utils
import logging
import time
import uuid
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.requests import ClientDisconnect

from risingstars.kit import errors
from risingstars.upload import capacity, catalog, intake, messages, schemas, tus
from risingstars.upload.deps import Runtime, User, parse_id

log = logging.getLogger("risingstars.upload.tus")

PATH = "/api/videos/tus"
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"


class TusRoute(APIRoute):
    """`Tus-Resumable` required on every request but OPTIONS (412) and added to every answer."""

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        handle = super().get_route_handler()

        async def handler(request: Request) -> Response:
            if request.method != "OPTIONS" and request.headers.get("tus-resumable") != tus.VERSION:
                response: Response = JSONResponse(
                    status_code=412,
                    content={"detail": messages.TUS_VERSION, "code": "tus_version"},
                    headers={"Tus-Version": tus.VERSION},
                )
            else:
                try:
                    response = await handle(request)
                except Exception as exc:
                    render = _handler_for(request, exc)
                    if render is None:
                        raise
                    response = await render(request, exc)
            response.headers["Tus-Resumable"] = tus.VERSION
            return response

        return handler


def _handler_for(request: Request, exc: Exception):
    """The app's most specific handler for `exc`, but not the catch-all (the kit's 500)."""
    handlers = request.app.exception_handlers
    for kind in type(exc).__mro__:
        if kind is Exception:
            return None
        if kind in handlers:
            return handlers[kind]
    return None


router = APIRouter(prefix=PATH, tags=["tus resumable uploads"], route_class=TusRoute)


def _whole_number(request: Request, name: str) -> int:
    raw = request.headers.get(name, "")
    if not raw.isascii() or not raw.isdigit() or len(raw) > 15:
        raise errors.Invalid(messages.tus_whole_number(name))
    return int(raw)


def _headers(upload: tus.Upload) -> dict[str, str]:
    headers = {
        "Upload-Offset": str(upload.offset),
        "Upload-Expires": email.utils.format_datetime(upload.expires_at, usegmt=True),
        "Cache-Control": "no-store",
    }
    if upload.completed:
        headers["Video-Id"] = headers["Task-Id"] = str(upload.video_id)
    return headers


async def _append(rt, request: Request, upload_id: uuid.UUID, user: User, offset: int):
    started = time.perf_counter()
    try:
        async with rt.tus.leased(upload_id, user.sub) as upload:
            upload = await rt.tus.append(upload, offset, intake.body_of(request.receive))
    except errors.ServiceError as exc:
        # A refused file or a capacity refusal is counted; a storage fault or a race is not.
        counted = (errors.Invalid, errors.TimedOut, errors.TooMany)
        if isinstance(exc, counted) or exc.code == capacity.BUSY:
            intake.tally("tus", intake.outcome(exc), exc.code)
        raise
    if upload.completed:
        intake.tally("tus", "accepted", "ok", started)
        log.info("tus upload complete", extra={"video_id": str(upload.video_id)})
    return upload


@router.options("", status_code=204)
@router.options("/", status_code=204)
@router.options("/{upload_id}", status_code=204)
async def capabilities(rt: Runtime) -> Response:
    return Response(
        status_code=204,
        headers={
            "Tus-Version": tus.VERSION,
            "Tus-Extension": tus.EXTENSIONS,
            "Tus-Max-Size": str(rt.settings.max_upload_bytes),
        },
    )


# tus clients create at the collection's URL with or without its trailing slash.
CREATED = {
    "status_code": 201,
    "response_class": Response,  # the answer is in its headers
    "responses": schemas.errors(400, 401, 408, 412, 413, 423, 429, 503),
    "openapi_extra": schemas.TUS_CREATE,
}


@router.post("", **CREATED)
@router.post("/", **CREATED)
async def create(request: Request, user: User, rt: Runtime) -> Response:
    if "upload-defer-length" in request.headers:
        raise errors.Invalid(messages.TUS_DEFER_LENGTH)
    length = _whole_number(request, "upload-length")
    if length == 0:
        raise errors.Invalid(messages.TUS_EMPTY)
    owner = catalog.Uploader.from_claims(user)
    upload = await rt.tus.create(owner, length, request.headers.get("upload-metadata"))
    if request.headers.get("content-type", "").startswith(OFFSET_CONTENT_TYPE):
        try:
            upload = await _append(rt, request, upload.id, user, 0)
        except ClientDisconnect:
            return Response(status_code=400)
    headers = _headers(upload) | {"Location": f"{PATH}/{upload.id}"}
    return Response(status_code=201, headers=headers)


@router.head(
    "/{upload_id}",
    responses=schemas.errors(401, 404, 410, 412),
    openapi_extra=schemas.TUS_VERSION_ONLY,
)
async def offset(upload_id: str, user: User, rt: Runtime) -> Response:
    upload = await rt.tus.get(parse_id(upload_id, messages.UPLOAD_NOT_FOUND), user.sub)
    headers = _headers(upload) | {"Upload-Length": str(upload.length)}
    if upload.metadata:
        headers["Upload-Metadata"] = upload.metadata
    return Response(status_code=200, headers=headers)


@router.patch(
    "/{upload_id}",
    status_code=204,
    responses=schemas.errors(400, 401, 404, 408, 409, 410, 412, 415, 423, 429, 503),
    openapi_extra=schemas.TUS_APPEND,
)
async def append(upload_id: str, request: Request, user: User, rt: Runtime) -> Response:
    if not request.headers.get("content-type", "").startswith(OFFSET_CONTENT_TYPE):
        raise HTTPException(415, messages.TUS_CONTENT_TYPE)
    start = _whole_number(request, "upload-offset")
    try:
        upload = await _append(
            rt, request, parse_id(upload_id, messages.UPLOAD_NOT_FOUND), user, start
        )
    except ClientDisconnect:
        log.info("tus request ended early; its bytes are kept", extra={"upload_id": upload_id})
        return Response(status_code=400)
    return Response(status_code=204, headers=_headers(upload))


@router.delete(
    "/{upload_id}",
    status_code=204,
    responses=schemas.errors(401, 404, 409, 410, 412, 423),
    openapi_extra=schemas.TUS_VERSION_ONLY,
)
async def terminate(upload_id: str, user: User, rt: Runtime) -> Response:
    async with rt.tus.leased(parse_id(upload_id, messages.UPLOAD_NOT_FOUND), user.sub) as upload:
        await rt.tus.terminate(upload)
    return Response(status_code=204)
